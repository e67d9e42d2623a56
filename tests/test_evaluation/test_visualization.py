"""Example pictures: CJK font lookup and the no-font fallback."""
import warnings

import numpy as np

from cnclip_mm.visualization import fonts, render_retrieval_example, render_zeroshot_examples


def _images(n=3):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_font_lookup_order(tmp_path, monkeypatch):
    font = tmp_path / 'my.ttf'
    font.write_bytes(b'not really a font')
    fonts.find_cjk_font.cache_clear()
    assert fonts.find_cjk_font(str(font)) == str(font)
    monkeypatch.setenv('CNCLIP_CJK_FONT', str(font))
    fonts.find_cjk_font.cache_clear()
    assert fonts.find_cjk_font() == str(font)
    fonts.find_cjk_font.cache_clear()


def test_render_without_cjk_font_warns_once_and_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, 'find_cjk_font', lambda preferred=None: None)
    fonts._warn_no_cjk_font.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = render_retrieval_example('海边的日落', _images(), [True, False, False],
                                       str(tmp_path / 'a' / 'r.png'), scores=[0.3, 0.2, 0.1])
        render_zeroshot_examples(_images(2), [['猫', '狗'], ['狗', '猫']], [[0.6, 0.4], [0.7, 0.3]], ['猫', '猫'],
                                 str(tmp_path / 'z.png'))
    messages = [str(w.message) for w in caught]
    assert sum('no font with Chinese glyphs' in m for m in messages) == 1, messages
    assert 'fonts-wqy-microhei' in messages[0] and not any('Glyph' in m for m in messages)
    assert (tmp_path / 'a' / 'r.png').stat().st_size > 2000 and out.endswith('r.png')


def test_render_with_system_font(tmp_path):
    fonts.find_cjk_font.cache_clear()
    render_retrieval_example('一只猫', _images(5), [False, True, False, False, True], str(tmp_path / 'r.png'),
                             labels=list('abcde'))
    render_zeroshot_examples(_images(2), [['猫', '狗'], ['狗', '猫']], [[0.6, 0.4], [0.7, 0.3]], ['猫', '猫'],
                             str(tmp_path / 'z.png'))
    assert (tmp_path / 'r.png').stat().st_size > 2000 and (tmp_path / 'z.png').stat().st_size > 2000
