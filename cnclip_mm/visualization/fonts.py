"""Finding a font that renders Chinese, with a warning (not a failure) when none is installed."""
import os
import shutil
import subprocess
import warnings
from functools import cache
from typing import Optional

# Families matplotlib may know under these names when fontconfig is absent.
KNOWN_CJK_FAMILIES = ('Noto Sans CJK SC', 'Noto Serif CJK SC', 'WenQuanYi Micro Hei', 'WenQuanYi Zen Hei',
                      'Source Han Sans SC', 'SimHei', 'Microsoft YaHei', 'PingFang SC', 'AR PL UMing CN')
INSTALL_HINT = ('install one, e.g. `apt-get install fonts-wqy-microhei` (4 MB) or `fonts-noto-cjk`, '
                'or set CNCLIP_CJK_FONT=/path/to/font.ttf')


@cache
def find_cjk_font(preferred: Optional[str] = None) -> Optional[str]:
    """Path of a font file with Chinese glyphs, or None.

    Order: ``preferred``, ``$CNCLIP_CJK_FONT``, ``fc-list :lang=zh``, then matplotlib's font list.
    """
    for candidate in (preferred, os.environ.get('CNCLIP_CJK_FONT')):
        if candidate:
            if os.path.isfile(candidate):
                return candidate
            warnings.warn(f'CJK font {candidate!r} does not exist; searching the system instead', stacklevel=2)
    if shutil.which('fc-list'):
        try:
            out = subprocess.run(['fc-list', ':lang=zh', 'file'], capture_output=True, text=True,
                                 timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ''
        files = sorted(line.split(':')[0].strip() for line in out.splitlines() if line.strip())
        if files:
            return files[0]
    from matplotlib import font_manager
    for family in KNOWN_CJK_FAMILIES:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        if path:
            return path
    return None


def cjk_font_properties(preferred: Optional[str] = None):
    """matplotlib ``FontProperties`` for Chinese text; the default font (with a warning) if none."""
    from matplotlib import font_manager
    path = find_cjk_font(preferred)
    if path is None:
        _warn_no_cjk_font()
        return font_manager.FontProperties()
    return font_manager.FontProperties(fname=path)


@cache
def _warn_no_cjk_font() -> None:
    """One warning per process, instead of matplotlib's one per missing glyph and picture."""
    warnings.warn(f'no font with Chinese glyphs found, captions will show boxes; {INSTALL_HINT}', stacklevel=3)
    warnings.filterwarnings('ignore', message=r'Glyph \d+ .* missing from font', category=UserWarning)
