"""RandAugment-style photometric/geometric policy built from Pillow ops (no torchvision)."""
import random
from typing import Callable, Dict, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image, ImageEnhance, ImageOps

from cnclip_mm.registry import TRANSFORMS

_FILL = (128, 128, 128)


def _signed(value: float) -> float:
    return value if random.random() < 0.5 else -value


def _affine(img: Image.Image, matrix) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=_FILL)


# Each op maps (image, level in [0, 1]) -> image; the level sets the strength.
OPS: Dict[str, Callable[[Image.Image, float], Image.Image]] = {
    'AutoContrast': lambda img, m: ImageOps.autocontrast(img),
    'Equalize': lambda img, m: ImageOps.equalize(img),
    'Invert': lambda img, m: ImageOps.invert(img),
    'Rotate': lambda img, m: img.rotate(_signed(30 * m), resample=Image.BILINEAR, fillcolor=_FILL),
    'Posterize': lambda img, m: ImageOps.posterize(img, max(1, 8 - int(4 * m))),
    'Solarize': lambda img, m: ImageOps.solarize(img, int(256 - 256 * m)),
    'Color': lambda img, m: ImageEnhance.Color(img).enhance(1 + _signed(0.9 * m)),
    'Contrast': lambda img, m: ImageEnhance.Contrast(img).enhance(1 + _signed(0.9 * m)),
    'Brightness': lambda img, m: ImageEnhance.Brightness(img).enhance(1 + _signed(0.9 * m)),
    'Sharpness': lambda img, m: ImageEnhance.Sharpness(img).enhance(1 + _signed(0.9 * m)),
    'ShearX': lambda img, m: _affine(img, (1, _signed(0.3 * m), 0, 0, 1, 0)),
    'ShearY': lambda img, m: _affine(img, (1, 0, 0, _signed(0.3 * m), 1, 0)),
    'TranslateX': lambda img, m: _affine(img, (1, 0, _signed(0.45 * m) * img.width, 0, 1, 0)),
    'TranslateY': lambda img, m: _affine(img, (1, 0, 0, 0, 1, _signed(0.45 * m) * img.height)),
}
DEFAULT_OPS = tuple(k for k in OPS if k != 'Invert')


@TRANSFORMS.register_module()
class RandAugment(BaseTransform):
    """Apply ``num_ops`` random ops at magnitude ``magnitude`` (of 10), each with prob ``prob``.

    Off by default in the configs: add it after the crop to enable it (docs/data.md).
    Randomness comes from Python's ``random``, which mmengine seeds per worker.

    Args:
        num_ops: Ops drawn per image.
        magnitude: Strength in [0, 10].
        magnitude_std: Gaussian jitter of the magnitude per op (timm's ``mstd``).
        prob: Chance each drawn op is applied.
        ops: Names from :data:`OPS` to draw from (default: all but Invert).

    Required Keys:
        - img (np.uint8 [H, W, 3]; text-only items without it pass through)

    Modified Keys:
        - img
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 9, magnitude_std: float = 0.5,
                 prob: float = 0.5, ops: Optional[Sequence[str]] = None):
        ops = tuple(ops or DEFAULT_OPS)
        unknown = [o for o in ops if o not in OPS]
        if unknown:
            raise ValueError(f'RandAugment: unknown ops {unknown}; choose from {sorted(OPS)}')
        self.num_ops, self.magnitude, self.magnitude_std = num_ops, magnitude, magnitude_std
        self.prob, self.ops = prob, ops

    def transform(self, results: dict) -> dict:
        if results.get('img') is None:  # text-only item
            return results
        img = Image.fromarray(results['img'])
        for name in random.choices(self.ops, k=self.num_ops):
            if random.random() >= self.prob:
                continue
            magnitude = random.gauss(self.magnitude, self.magnitude_std) if self.magnitude_std else self.magnitude
            img = OPS[name](img, min(max(magnitude, 0.0), 10.0) / 10.0)
        results['img'] = np.asarray(img.convert('RGB'))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, '
                f'magnitude_std={self.magnitude_std}, prob={self.prob})')
