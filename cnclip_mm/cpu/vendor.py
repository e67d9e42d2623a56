"""The CPU's vendor string, which MKL's kernel choice goes by (so the oneDNN rule asks it too)."""
from typing import Optional


def _cpuinfo(field: str) -> Optional[str]:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.split(':', 1)[0].strip() == field:
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_vendor() -> Optional[str]:
    """``vendor_id`` from ``/proc/cpuinfo`` (e.g. ``'AuthenticAMD'``), None where there is none."""
    return _cpuinfo('vendor_id')


def cpu_name() -> Optional[str]:
    """``model name`` from ``/proc/cpuinfo`` (for benchmark tables), None where there is none."""
    return _cpuinfo('model name')
