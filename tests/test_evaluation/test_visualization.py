"""Example pictures: the shipped CJK font and what the pictures say (ground truth only where given)."""
import numpy as np
import pytest
from PIL import Image

from cnclip_mm.datasets.demo import demo_vocab
from cnclip_mm.visualization import fonts, render_retrieval_example, render_zeroshot_examples

CAPTIONS = ['蓝色背景上左上角有一个大的红色圆形', '海边的日落', '一只在草地上奔跑的狗', '北京故宫博物院，冬天的雪景。',
            '（２０２３年）“你好”！龍鳳']


def _images(n=3):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(n)]


def _texts(path) -> list:
    return Image.open(path).text['Description'].split('\n')


def test_shipped_font_has_the_glyphs_without_system_fonts(tmp_path, monkeypatch):
    """With fontconfig shown no fonts and no override, the shipped font is chosen and has a glyph for
    every character of sample captions and of the demo vocab."""
    from matplotlib.ft2font import FT2Font
    (tmp_path / 'fonts.conf').write_text('<?xml version="1.0"?><fontconfig></fontconfig>')
    monkeypatch.setenv('FONTCONFIG_FILE', str(tmp_path / 'fonts.conf'))
    monkeypatch.delenv('CNCLIP_CJK_FONT', raising=False)
    fonts.find_cjk_font.cache_clear()
    path = fonts.find_cjk_font()
    fonts.find_cjk_font.cache_clear()
    assert path == fonts.SHIPPED_FONT
    cmap = FT2Font(path).get_charmap()
    wanted = set(''.join(CAPTIONS)) | {c for tok in demo_vocab() for c in tok if not tok.startswith('[')}
    assert not {c for c in wanted if ord(c) not in cmap}, 'characters without a glyph'


def test_font_override_order(tmp_path, monkeypatch):
    font = tmp_path / 'my.ttf'
    font.write_bytes(b'not really a font')
    fonts.find_cjk_font.cache_clear()
    assert fonts.find_cjk_font(str(font)) == str(font)
    monkeypatch.setenv('CNCLIP_CJK_FONT', str(font))
    fonts.find_cjk_font.cache_clear()
    assert fonts.find_cjk_font() == str(font)
    monkeypatch.setenv('CNCLIP_CJK_FONT', str(tmp_path / 'missing.ttf'))
    fonts.find_cjk_font.cache_clear()
    with pytest.warns(UserWarning, match='missing.ttf. does not exist; using the shipped'):
        assert fonts.find_cjk_font() == fonts.SHIPPED_FONT
    fonts.find_cjk_font.cache_clear()


def test_pictures_say_ground_truth_only_where_given(tmp_path):
    with_gt = render_retrieval_example('一只猫', _images(3), [False, True, False], str(tmp_path / 'a' / 'r.png'),
                                       scores=[0.3, 0.2, 0.1], labels=['x', 'y', 'z'])
    assert _texts(with_gt) == ['一只猫', '#1 miss x score 0.300', '#2 hit y score 0.200', '#3 miss z score 0.100']
    unknown = render_retrieval_example('一只猫', _images(2), None, str(tmp_path / 'r2.png'), scores=[0.3, 0.2])
    assert _texts(unknown) == ['一只猫', '#1 score 0.300', '#2 score 0.200']

    names, scores = [['猫', '狗'], ['狗', '猫']], [[0.6, 0.4], [0.7, 0.3]]
    graded = render_zeroshot_examples(_images(2), names, scores, ['猫', '猫'], str(tmp_path / 'z.png'))
    assert _texts(graded) == ['gt: 猫', '猫 60.0%', '狗 40.0%', 'gt: 猫', '狗 70.0%', '猫 30.0%']
    predicted = render_zeroshot_examples(_images(2), names, scores, None, str(tmp_path / 'z2.png'))
    assert _texts(predicted) == ['prediction: 猫 (60.0%)', '猫 60.0%', '狗 40.0%',
                                 'prediction: 狗 (70.0%)', '狗 70.0%', '猫 30.0%']
    assert all(Image.open(p).size[0] > 100 for p in (with_gt, unknown, graded, predicted))
