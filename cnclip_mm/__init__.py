"""cnclip-mm: Chinese CLIP on MMEngine."""
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version

from .version import __version__

MMENGINE_MIN = (0, 10, 0)
MMENGINE_MAX = (1, 0, 0)


def _check_mmengine() -> None:
    """The supported mmengine range, read from its metadata (importing mmengine here would slow every
    ``tools/*.py --help``)."""
    try:
        found = _installed_version('mmengine')
    except PackageNotFoundError as err:
        raise ImportError('cnclip_mm needs mmengine (pip install "mmengine>=0.10,<1.0")') from err
    parts = tuple(int(p) if p.isdigit() else 0 for p in (found.split('+')[0].split('.') + ['0', '0'])[:3])
    if not MMENGINE_MIN <= parts < MMENGINE_MAX:
        raise ImportError(f'cnclip_mm needs {".".join(map(str, MMENGINE_MIN))} <= mmengine < '
                          f'{".".join(map(str, MMENGINE_MAX))}, found {found}')


_check_mmengine()

__all__ = ['__version__']
