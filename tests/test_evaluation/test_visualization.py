"""Example pictures: CJK font lookup and the no-font fallback."""
import numpy as np
import pytest

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


def test_render_without_cjk_font_warns_and_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, 'find_cjk_font', lambda preferred=None: None)
    with pytest.warns(UserWarning, match='no font with Chinese glyphs'):
        out = render_retrieval_example('海边的日落', _images(), [True, False, False],
                                       str(tmp_path / 'a' / 'r.png'), scores=[0.3, 0.2, 0.1])
    assert (tmp_path / 'a' / 'r.png').stat().st_size > 2000 and out.endswith('r.png')


def test_render_with_system_font(tmp_path):
    fonts.find_cjk_font.cache_clear()
    render_retrieval_example('一只猫', _images(5), [False, True, False, False, True], str(tmp_path / 'r.png'),
                             labels=list('abcde'))
    render_zeroshot_examples(_images(2), [['猫', '狗'], ['狗', '猫']], [[0.6, 0.4], [0.7, 0.3]], ['猫', '猫'],
                             str(tmp_path / 'z.png'))
    assert (tmp_path / 'r.png').stat().st_size > 2000 and (tmp_path / 'z.png').stat().st_size > 2000
