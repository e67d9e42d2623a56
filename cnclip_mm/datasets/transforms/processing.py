"""Geometric transforms done with Pillow, so they match the official (PIL) preprocessing."""
import math
from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from cnclip_mm.registry import TRANSFORMS

from .image_modes import resize_then_rgb

_INTERPOLATION = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR, 'nearest': Image.NEAREST}


def _pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``size`` as (width, height)."""
    if isinstance(size, int):
        return size, size
    w, h = size
    return int(w), int(h)


@TRANSFORMS.register_module()
class ResizeExact(BaseTransform):
    """Resize to exactly ``scale`` with Pillow, ignoring the aspect ratio (official eval).

    Identical to ``Image.resize((w, h), Image.BICUBIC)`` on the decoded image followed by
    ``convert('RGB')`` (the official order; on the RGB image when ``LoadImage`` converted first).

    Args:
        scale: Output size, an int for (r, r) or (width, height).
        interpolation: ``'bicubic'`` (official), ``'bilinear'`` or ``'nearest'``.

    Required Keys:
        - img (np.uint8 [H, W, 3]; text-only items without it pass through)

    Modified Keys:
        - img, img_shape, img_pil (consumed)
    """

    def __init__(self, scale: Union[int, Sequence[int]] = 224, interpolation: str = 'bicubic'):
        self.scale = _pair(scale)
        self.interpolation = interpolation
        self._resample = _INTERPOLATION[interpolation]

    def transform(self, results: dict) -> dict:
        if results.get('img') is None:  # text-only item
            return results
        results['img'] = resize_then_rgb(results, self.scale, self._resample)
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale={self.scale}, interpolation={self.interpolation!r})'


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random area/aspect box and resize it to ``scale`` (training augmentation).

    The box covers a fraction in ``crop_scale`` of the image area with a log-uniform aspect ratio
    in ``ratio``; after 10 failed draws a centre crop is used. The box is cropped, then resized with
    Pillow (bicubic) in the decoded image's own mode, then ``convert('RGB')``: the pixels of
    torchvision's ``resized_crop`` in the official (timm) training transform, in its order.

    Args:
        scale: Output size, an int for (r, r) or (width, height).
        crop_scale: Area fraction range (official: (0.9, 1.0)).
        ratio: Aspect-ratio range (width / height).
        interpolation: ``'bicubic'``, ``'bilinear'`` or ``'nearest'``.

    Required Keys:
        - img (np.uint8 [H, W, 3]; text-only items without it pass through)

    Modified Keys:
        - img, img_shape, img_pil (consumed)
    """

    def __init__(self, scale: Union[int, Sequence[int]] = 224,
                 crop_scale: Tuple[float, float] = (0.9, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = 'bicubic'):
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f'crop_scale must satisfy 0 < lo <= hi <= 1, got {crop_scale}')
        self.scale = _pair(scale)
        self.crop_scale = tuple(crop_scale)
        self.ratio = tuple(ratio)
        self._log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.interpolation = interpolation
        self._resample = _INTERPOLATION[interpolation]

    def get_box(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """A random (left, top, right, bottom) crop box: the first of 10 draws that fits.

        All the uniforms come from one ``np.random`` call (per-call overhead dominates on small images).
        """
        u = np.random.random_sample(22).tolist()
        (lo, hi), (r0, r1) = self.crop_scale, self._log_ratio
        for i in range(0, 20, 2):
            target = height * width * (lo + (hi - lo) * u[i])
            aspect = math.exp(r0 + (r1 - r0) * u[i + 1])
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left = min(int(u[20] * (width - w + 1)), width - w)
                top = min(int(u[21] * (height - h + 1)), height - h)
                return left, top, left + w, top + h
        # Fallback: the largest centre crop whose aspect lies in range.
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            w, h = int(round(height * self.ratio[1])), height
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        return left, top, left + w, top + h

    def transform(self, results: dict) -> dict:
        if results.get('img') is None:  # text-only item
            return results
        height, width = results['img'].shape[:2]
        box = self.get_box(height, width)
        results['img'] = resize_then_rgb(results, self.scale, self._resample, box=box)
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, crop_scale={self.crop_scale}, '
                f'ratio={self.ratio}, interpolation={self.interpolation!r})')
