"""The CPU's vendor string: what torch's and MKL's vendor checks go by, so the fast paths ask it too."""
from typing import Optional


def cpu_vendor() -> Optional[str]:
    """``vendor_id`` from ``/proc/cpuinfo`` (e.g. ``'AuthenticAMD'``), None where there is none."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('vendor_id'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None
