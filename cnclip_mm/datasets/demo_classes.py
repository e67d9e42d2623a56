"""A synthetic classification set in the ELEVATER folder layout, for class-caption fine-tuning.

Ten classes (colour x shape of the demo images: "红色圆形", ...), ``{split}/{index:03d}/*.png``,
``label_cn.txt``, ``templates.txt`` (Chinese prompts) and a ``vocab.txt`` that extends the demo
vocab (same ids, new characters appended), so the demo model can be fine-tuned on it.
"""
import os
import os.path as osp
import random

from cnclip_mm.registry import DATASETS

from .demo import (
    BACKGROUNDS,
    POSITIONS,
    SIZES,
    _write,
    demo_vocab,
    is_complete,
    render_shape,
    require_generated,
)
from .image_folder import ImageFolderZeroShotDataset

DEMO_CLASSES_VERSION = '1'
CLASS_COLORS = ('红色', '绿色', '蓝色', '黄色', '紫色')
CLASS_SHAPES = ('圆形', '正方形')
CLASS_TEMPLATES = ('一个{}', '一张{}的图片', '图中是{}', '这是一个{}', '画着{}的图')


def demo_class_names():
    return [color + shape for color in CLASS_COLORS for shape in CLASS_SHAPES]


def make_demo_classes(root: str = 'data/demo_classes', train_per_class: int = 200,
                      test_per_class: int = 50, seed: int = 0) -> str:
    """Write the set under ``root`` (same bytes for the same arguments) and return ``root``."""
    names = demo_class_names()
    for split, per_class in (('train', train_per_class), ('test', test_per_class)):
        rng = random.Random(seed * 1000 + (split == 'test'))
        for label, name in enumerate(names):
            color, shape = name[:2], name[2:]
            folder = osp.join(root, split, f'{label:03d}')
            os.makedirs(folder, exist_ok=True)
            for k in range(per_class):
                bg = rng.choice([b for b in BACKGROUNDS if b != color])
                png = render_shape(rng, shape, color, bg, rng.choice(list(POSITIONS)), rng.choice(list(SIZES)))
                _write(osp.join(folder, f'{k:04d}.png'), png)
    base = demo_vocab()
    extra = sorted(set(''.join(CLASS_TEMPLATES).replace('{}', '')) - set(base))
    _write(osp.join(root, 'vocab.txt'), ('\n'.join(base + extra) + '\n').encode('utf-8'))
    _write(osp.join(root, 'label_cn.txt'), ('\n'.join(names) + '\n').encode('utf-8'))
    _write(osp.join(root, 'templates.txt'), ('\n'.join(CLASS_TEMPLATES) + '\n').encode('utf-8'))
    stamp = f'{DEMO_CLASSES_VERSION} {train_per_class} {test_per_class} {seed}\n'
    _write(osp.join(root, '.complete'), stamp.encode())
    return root


def ensure_demo_classes(root: str = 'data/demo_classes') -> str:
    """Generate the default-size set unless a complete one of this version (any size) is there."""
    return root if is_complete(root, DEMO_CLASSES_VERSION) else make_demo_classes(root)


@DATASETS.register_module()
class DemoClassesDataset(ImageFolderZeroShotDataset):
    """:class:`ImageFolderZeroShotDataset` over the demo classes; ``generate_if_missing`` as for
    :class:`~.demo.DemoImageTextDataset` (the default size is generated)."""

    def __init__(self, data_root: str = 'data/demo_classes', generate_if_missing: bool = False, **kwargs):
        data_root = require_generated(data_root, DEMO_CLASSES_VERSION, generate_if_missing, make_demo_classes,
                                      'DemoClassesDataset')
        super().__init__(data_root=data_root, **kwargs)
