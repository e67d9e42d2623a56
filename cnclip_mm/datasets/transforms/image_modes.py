"""Pillow image modes: the official order of resize and RGB conversion, and 16-bit scaling.

The official retrieval / training readers resize the decoded image in its own mode and only then call
``convert('RGB')``; for RGBA / LA (Pillow resizes with premultiplied alpha), P (Pillow resizes palettes with
nearest neighbour) and CMYK that gives other pixels than converting first. ``LoadImage(convert_rgb=
'after_resize')`` therefore keeps the decoded image in ``img_pil`` for the first resize transform.

16-bit and 32-bit integer images (``I;16``, ``I``) are scaled to 8 bits (``round(v / 257)``, 65535 -> 255)
before anything else: Pillow's ``convert('RGB')`` clips them, so a mid-grey 16-bit PNG would come out white.
"""
import numpy as np
from PIL import Image

_WIDE_INT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


def to_8bit(img: Image.Image) -> Image.Image:
    """An 8-bit ``L`` image for 16/32-bit integer modes (scaled, not clipped); other modes unchanged."""
    if img.mode not in _WIDE_INT_MODES:
        return img
    values = np.asarray(img, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode='L')


def rgb_array(img: Image.Image) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB pixels of a Pillow image of any mode."""
    return np.asarray(img if img.mode == 'RGB' else img.convert('RGB'))


def resize_then_rgb(results: dict, size, resample, box=None) -> np.ndarray:
    """Resize ``img_pil`` (the decoded image in its own mode) when present, else ``img``; then RGB.

    ``img_pil`` is consumed: only the first resize after ``LoadImage`` sees the original mode. A
    ``box`` is cropped first and the crop resized, as torchvision's ``resized_crop`` (behind timm's
    random-resized crop in the official training transform) does: the filter stops at the crop's
    edges, where ``resize(box=...)`` would also weigh the pixels outside it.
    """
    source = results.pop('img_pil', None)
    if source is None:
        source = Image.fromarray(results['img'])
    if box is not None:
        source = source.crop(box)
    return rgb_array(source.resize(size, resample))
