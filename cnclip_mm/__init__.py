"""cnclip-mm: Chinese CLIP on MMEngine."""
import mmengine
from mmengine.utils import digit_version

from .version import __version__

MMENGINE_MIN = '0.10.0'
MMENGINE_MAX = '1.0.0'
if not digit_version(MMENGINE_MIN) <= digit_version(mmengine.__version__) < digit_version(MMENGINE_MAX):
    raise ImportError(
        f'cnclip_mm needs {MMENGINE_MIN} <= mmengine < {MMENGINE_MAX}, found {mmengine.__version__}'
    )

__all__ = ['__version__']
