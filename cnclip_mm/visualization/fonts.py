"""The font for Chinese captions: a shipped Noto Sans CJK SC subset, so pictures are readable on a server
with no CJK font installed (``tools/dev/make_cjk_font.py`` writes it; SIL Open Font License 1.1)."""
import os
import os.path as osp
import warnings
from functools import cache
from typing import Optional

SHIPPED_FONT = osp.join(osp.dirname(osp.abspath(__file__)), 'cjk_font', 'NotoSansCJKsc-Regular-subset.otf')


@cache
def find_cjk_font(preferred: Optional[str] = None) -> str:
    """Path of a font file with Chinese glyphs.

    Order: ``preferred``, ``$CNCLIP_CJK_FONT``, then the shipped font (printable ASCII, all of GB2312 and
    every character of the BERT vocab).
    """
    for candidate in (preferred, os.environ.get('CNCLIP_CJK_FONT')):
        if candidate:
            if osp.isfile(candidate):
                return candidate
            warnings.warn(f'CJK font {candidate!r} does not exist; using the shipped {SHIPPED_FONT}',
                          stacklevel=2)
    if not osp.isfile(SHIPPED_FONT):
        raise FileNotFoundError(f'the shipped CJK font {SHIPPED_FONT} is missing; reinstall cnclip-mm or set '
                                'CNCLIP_CJK_FONT=/path/to/font.otf')
    return SHIPPED_FONT


def cjk_font_properties(preferred: Optional[str] = None):
    """matplotlib ``FontProperties`` for Chinese text (see :func:`find_cjk_font`)."""
    from matplotlib import font_manager
    return font_manager.FontProperties(fname=find_cjk_font(preferred))
