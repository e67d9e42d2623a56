"""Decode and resize in one step, in uint8; normalisation is left to the model side, once per batch.

By default the pixels are exactly those of ``LoadImage`` + ``ResizeExact`` (Pillow decode, bicubic
resize: the official evaluation tensor once ``CLIPDataPreprocessor`` normalises the batch). The speed
comes from libjpeg-turbo without Pillow's overhead (simplejpeg, optional) and from skipping the
per-image float tensor and normalisation of the reference pipeline.

``draft=True`` trades exact pixels for speed, for training: a JPEG at least twice the target size in
both sides is decoded at a reduced DCT scale (1/2 .. 1/8, never below the target), and the resize
is OpenCV's (area averaging where a side still shrinks by 2 or more, else bilinear; cubic when
enlarging) instead of Pillow's bicubic, which on a full-size photo costs more than the decode
itself. benchmarks/data_throughput.py prints the speed and the mean pixel difference (about one level
of 255 on its real-size JPEGs); evaluation keeps the default.
"""
import io
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from cnclip_mm.registry import TRANSFORMS

from ..bad_samples import BadSampleError
from .loading import LoadImage
from .processing import _INTERPOLATION, _pair


def _simplejpeg():
    try:
        import simplejpeg
    except ImportError:  # optional: Pillow alone gives the same pixels, a little slower
        return None
    return simplejpeg


def _worth_reducing(width: int, height: int, size: Sequence[int]) -> bool:
    """Scaled IDCTs only pay off for a reduction by 2 or more (and are slower otherwise)."""
    return width >= 2 * size[0] and height >= 2 * size[1]


def _decode_turbo(data: bytes, size: Sequence[int], draft: bool) -> Optional[Tuple[np.ndarray, Tuple[int, int]]]:
    """libjpeg-turbo through simplejpeg for baseline colour JPEGs: (RGB array, original (height,
    width)); None when it does not apply."""
    turbo = _simplejpeg()
    if turbo is None or not data[:2] == b'\xff\xd8':
        return None
    try:
        height, width, _, colorspace = turbo.decode_jpeg_header(data)
        if colorspace != 'YCbCr':
            return None  # greyscale / CMYK: Pillow's conversions are the reference
        reduce = draft and _worth_reducing(width, height, size)
        scale = dict(min_width=size[0], min_height=size[1]) if reduce else {}
        return turbo.decode_jpeg(data, colorspace='RGB', **scale), (height, width)
    except ValueError:  # progressive or unusual files: Pillow decodes them
        return None


def _decode_pillow(data: bytes, size: Sequence[int], draft: bool) -> Tuple[Image.Image, Tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as img:
        original = (img.height, img.width)
        if draft and img.format == 'JPEG' and _worth_reducing(img.width, img.height, size):
            img.draft('RGB', tuple(size))  # largest DCT reduction keeping both sides >= size
        return img.convert('RGB'), original


def _draft_resize(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """OpenCV: area averaging where a side shrinks by 2 or more, else bilinear (cubic when enlarging)."""
    import cv2
    factor = max(array.shape[1] / size[0], array.shape[0] / size[1])
    flag = cv2.INTER_AREA if factor >= 2 else cv2.INTER_LINEAR if factor >= 1 else cv2.INTER_CUBIC
    return cv2.resize(array, tuple(size), interpolation=flag)


def decode_resize(data: bytes, size: Sequence[int], draft: bool = False,
                  interpolation: str = 'bicubic') -> Tuple[np.ndarray, Tuple[int, int]]:
    """Encoded image bytes -> (RGB uint8 ``[H, W, 3]`` resized to ``size`` = (width, height),
    the original (height, width)).

    Colour JPEGs are decoded by simplejpeg when it is installed: the same libjpeg-turbo defaults as
    Pillow's (islow DCT, fancy upsampling), so the same pixels (tests/test_datasets/test_fast_loading.py
    checks), with less overhead. Everything else goes through Pillow. ``draft``: see the module doc
    (``interpolation`` is then unused).
    """
    image, original = _decode_turbo(data, size, draft) or _decode_pillow(data, size, draft)
    if draft:
        return _draft_resize(np.asarray(image), size), original
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return np.asarray(image.resize(tuple(size), _INTERPOLATION[interpolation])), original


@TRANSFORMS.register_module()
class LoadResizeImage(LoadImage):
    """``LoadImage`` + ``ResizeExact`` in one transform (same pixels unless ``draft``).

    Args:
        scale: output size, an int for (r, r) or (width, height).
        draft: reduced-scale JPEG decoding and OpenCV resizing (faster, changes pixels: for
            training, not evaluation; see the module doc).
        interpolation: ``'bicubic'`` (official), ``'bilinear'`` or ``'nearest'`` (exact path only).

    Required Keys:
        - img | img_b64 | img_bytes | img_path
        - source (optional)

    Modified Keys:
        - img_b64, img_bytes (removed once decoded)

    Added Keys:
        - img (np.uint8 [scale_h, scale_w, 3], RGB)
        - img_shape, ori_shape
    """

    def __init__(self, scale: Union[int, Sequence[int]] = 224, draft: bool = False,
                 interpolation: str = 'bicubic'):
        self.scale = _pair(scale)
        self.draft = draft
        self.interpolation = interpolation
        if interpolation not in _INTERPOLATION:
            raise ValueError(f'interpolation must be one of {sorted(_INTERPOLATION)}, got {interpolation!r}')

    def transform(self, results: dict) -> dict:
        if results.get('img') is not None or ('image_id' not in results and not any(
                results.get(k) is not None for k in ('img_b64', 'img_bytes', 'img_path'))):
            # Arrays (CIFAR) and text-only items: the plain path.
            results = super().transform(results)
            if results.get('img') is not None:
                results['img'] = np.asarray(Image.fromarray(results['img']).resize(
                    self.scale, _INTERPOLATION[self.interpolation]))
                results['img_shape'] = results['img'].shape[:2]
            return results
        where = results.get('source') or results.get('img_path') or 'image'
        data = self._read(results, where)
        try:
            img, original = decode_resize(data, self.scale, self.draft, self.interpolation)
        except Exception as err:  # noqa: BLE001 - Pillow raises many types for broken files
            raise BadSampleError(f'{where}: corrupt or truncated image ({type(err).__name__}: {err})') from err
        results.pop('img_b64', None)
        results.pop('img_bytes', None)
        results['img'] = img
        results['img_shape'], results['ori_shape'] = img.shape[:2], original
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale={self.scale}, draft={self.draft}, interpolation={self.interpolation!r})'
