"""Synthetic Chinese image-caption data that a tiny model can really learn, made in seconds.

Each 64x64 PNG shows one shape; its caption says the shape, its colour, size, position and the
background colour, e.g. "蓝色背景上左上角有一个大的红色圆形". Files follow the official TSV/jsonl
layout, plus a char-level BERT-format ``vocab.txt`` ([PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
[MASK]=103) so the demo needs no download.
"""
import base64
import io
import json
import os
import os.path as osp
import random
from typing import Dict, List, Tuple

from PIL import Image, ImageDraw

from cnclip_mm.registry import DATASETS

from .tsv_dataset import ImageTextTSVDataset

DEMO_VERSION = '1'
IMAGE_SIZE = 64
SPLITS = {'train': (2000, 1), 'valid': (250, 100001), 'test': (250, 200001)}  # (images, first id)
SPLIT_SEEDS = {'train': 0, 'valid': 1, 'test': 2}

COLORS: Dict[str, Tuple[int, int, int]] = {
    '红色': (220, 40, 40), '绿色': (40, 170, 60), '蓝色': (40, 80, 220), '黄色': (240, 210, 40),
    '紫色': (150, 60, 190), '橙色': (250, 140, 30), '白色': (245, 245, 245), '黑色': (20, 20, 20),
}
BACKGROUNDS = ('白色', '黑色', '灰色', '蓝色', '黄色', '绿色')
BG_RGB = {**COLORS, '灰色': (128, 128, 128)}
SHAPES = ('圆形', '正方形', '三角形')
POSITIONS = {'左上角': (0.27, 0.27), '右上角': (0.73, 0.27), '左下角': (0.27, 0.73),
             '右下角': (0.73, 0.73), '中间': (0.5, 0.5)}
SIZES = {'大': 0.2, '小': 0.1}  # half-extent as a fraction of the image side
TEMPLATES = (
    '{bg}背景上{pos}有一个{size}的{color}{shape}',
    '一个{size}的{color}{shape}在{bg}背景的{pos}',
    '{pos}有一个{size}{color}{shape}，背景是{bg}',
)
SPECIALS = {0: '[PAD]', 100: '[UNK]', 101: '[CLS]', 102: '[SEP]', 103: '[MASK]'}


def _draw(rng: random.Random) -> Tuple[bytes, str]:
    """One PNG and its caption."""
    shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
    bg = rng.choice([b for b in BACKGROUNDS if b != color])
    pos, size = rng.choice(list(POSITIONS)), rng.choice(list(SIZES))
    png = render_shape(rng, shape, color, bg, pos, size)
    caption = rng.choice(TEMPLATES).format(bg=bg, pos=pos, size=size, color=color, shape=shape)
    return png, caption


def render_shape(rng: random.Random, shape: str, color: str, bg: str, pos: str, size: str) -> bytes:
    """PNG bytes of one shape (jittered by ``rng``) on a plain background."""
    s = IMAGE_SIZE
    cx = POSITIONS[pos][0] * s + rng.uniform(-2, 2)
    cy = POSITIONS[pos][1] * s + rng.uniform(-2, 2)
    r = SIZES[size] * s * rng.uniform(0.9, 1.1)
    img = Image.new('RGB', (s, s), BG_RGB[bg])
    draw = ImageDraw.Draw(img)
    fill = COLORS[color]
    if shape == '圆形':
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == '正方形':
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    buf = io.BytesIO()
    img.save(buf, format='PNG')
    return buf.getvalue()


def demo_vocab() -> List[str]:
    """Char-level vocab covering every caption character, with the official special ids."""
    chars = set()
    for template in TEMPLATES:
        chars.update(template.replace('{bg}', '').replace('{pos}', '').replace('{size}', '')
                     .replace('{color}', '').replace('{shape}', ''))
    for words in (COLORS, BACKGROUNDS, SHAPES, POSITIONS, SIZES):
        for word in words:
            chars.update(word)
    chars.update('0123456789abcdefghijklmnopqrstuvwxyz，。、！？,.!?')
    tokens = [SPECIALS.get(i, f'[unused{i}]') for i in range(104)]
    return tokens + sorted(chars - set(tokens))


def _write(path: str, data: bytes) -> None:
    # Write then rename: concurrent generators (e.g. DDP ranks) never see half a file.
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def make_demo_data(root: str = 'data/demo', seed: int = 0) -> str:
    """Write the demo set under ``root`` (same bytes for the same seed) and return ``root``."""
    os.makedirs(root, exist_ok=True)
    for split, (num, first_id) in SPLITS.items():
        rng = random.Random(seed * 1000 + SPLIT_SEEDS[split])
        tsv, texts = [], []
        for k in range(num):
            png, caption = _draw(rng)
            image_id = first_id + k
            tsv.append(f'{image_id}\t{base64.urlsafe_b64encode(png).decode()}\n')
            texts.append(json.dumps(dict(text_id=image_id, text=caption, image_ids=[image_id]),
                                    ensure_ascii=False) + '\n')
        _write(osp.join(root, f'{split}_imgs.tsv'), ''.join(tsv).encode())
        _write(osp.join(root, f'{split}_texts.jsonl'), ''.join(texts).encode('utf-8'))
    _write(osp.join(root, 'vocab.txt'), ('\n'.join(demo_vocab()) + '\n').encode('utf-8'))
    _write(osp.join(root, '.complete'), f'{DEMO_VERSION} {seed}\n'.encode())
    return root


def is_complete(root: str, version: str) -> bool:
    """Whether ``root`` holds a generated set finished by a generator of ``version`` (its ``.complete``)."""
    marker = osp.join(root, '.complete')
    if not osp.isfile(marker):
        return False
    with open(marker) as f:
        return f.read().split()[:1] == [version]


def ensure_demo_data(root: str = 'data/demo') -> str:
    """Generate the demo set unless a complete one of this version is already there."""
    return root if is_complete(root, DEMO_VERSION) else make_demo_data(root)


def require_generated(root: str, version: str, generate_if_missing: bool, make, what: str) -> str:
    """``root`` normalised, generated by ``make(root)`` when incomplete and ``generate_if_missing``;
    otherwise a missing set is an error naming the path (a typo must not become a new synthetic set)."""
    root = osp.normpath(root)
    if is_complete(root, version):
        return root
    if not generate_if_missing:
        raise FileNotFoundError(f'{what}: no complete generated set at {osp.abspath(root)} (no .complete marker of '
                                f'version {version}); fix data_root, or set generate_if_missing=True to '
                                'generate it there (the demo configs do)')
    return make(root)


@DATASETS.register_module()
class DemoImageTextDataset(ImageTextTSVDataset):
    """:class:`ImageTextTSVDataset` over the demo set.

    Args:
        data_root: the set's folder.
        generate_if_missing: generate the set at ``data_root`` when it is not there (the demo configs ask
            for it); False: a missing set is an error naming the path.
    """

    def __init__(self, data_root: str = 'data/demo', generate_if_missing: bool = False, **kwargs):
        data_root = require_generated(data_root, DEMO_VERSION, generate_if_missing, make_demo_data,
                                      'DemoImageTextDataset')
        super().__init__(data_root=data_root, **kwargs)
