"""Decode and resize (or crop and resize) in one step: the decoder only produces the pixels needed.

``LoadRandomResizedCrop`` is the training pipelines' image step. It draws the crop box from the
JPEG's header, then decodes at the largest DCT reduction (1/2, 1/4, 1/8) that keeps the box at
least the output size in both sides, and resizes the crop with OpenCV's area averaging instead of
Pillow's bicubic (``draft_decode`` has the rule and the decoders). The pixels change by about one
level of 255 on average (benchmarks/data_throughput.py prints it; the tests bound it); the box
draws are the official ones, and everything that is not an RGB / greyscale JPEG takes the exact path.

``LoadResizeImage`` is ``LoadImage`` + ``ResizeExact`` in one step with exactly their pixels (the
official evaluation preprocessing), a little faster through simplejpeg; ``draft=True`` gives it the
same reduced decoding for a whole-image resize.

Normalisation is left to the model side (``CLIPDataPreprocessor``), once per batch.
"""
from typing import Sequence, Tuple, Union

import numpy as np
from PIL import Image

from cnclip_mm.registry import TRANSFORMS

from ..bad_samples import BadSampleError
from .draft_decode import (
    area_resize,
    crop_reduced,
    decode_reduced,
    open_jpeg,
    reduction_for,
    resolve_decoder,
)
from .image_modes import rgb_array, to_8bit
from .loading import JPEG_SIGNATURE, LoadImage
from .processing import _INTERPOLATION, RandomResizedCrop, _pair

_ENCODED = ('img_b64', 'img_bytes', 'img_path')


def _encoded(results: dict) -> bool:
    """Whether the item's image still has to be decoded (not an array, not a text-only item)."""
    return results.get('img') is None and (
        'image_id' in results or any(results.get(k) is not None for k in _ENCODED))


def _where(results: dict) -> str:
    return results.get('source') or results.get('img_path') or 'image'


def _corrupt(where: str, err: Exception) -> BadSampleError:
    return BadSampleError(f'{where}: corrupt or truncated image ({type(err).__name__}: {err})')


def decode_resize(data: bytes, size: Sequence[int], draft: bool = False, interpolation: str = 'bicubic',
                  decoder: str = 'pillow') -> Tuple[np.ndarray, Tuple[int, int]]:
    """Encoded image bytes -> (RGB uint8 ``[H, W, 3]`` resized to ``size`` = (width, height),
    the original (height, width)).

    Exact (default): the pixels of ``LoadImage`` + ``ResizeExact`` (Pillow resize in the image's own
    mode, then RGB); an RGB JPEG is decoded by simplejpeg when ``decoder`` says so (the same
    libjpeg-turbo defaults as Pillow's, so the same pixels). ``draft``: RGB / greyscale JPEGs are
    decoded at a reduced DCT scale and area-resized (``interpolation`` is then unused).
    """
    image, fast = open_jpeg(data)
    original = (image.height, image.width)  # before a reduced decode changes image.size
    if fast and draft:
        pixels = decode_reduced(data, image, reduction_for(image.size, size), decoder)
        return area_resize(pixels, size), original
    if fast and decoder == 'simplejpeg' and image.mode == 'RGB':
        image = Image.fromarray(decode_reduced(data, image, 1, decoder))
    else:
        image.load()
        image = to_8bit(image)
    return rgb_array(image.resize(tuple(size), _INTERPOLATION[interpolation])), original


@TRANSFORMS.register_module()
class LoadResizeImage(LoadImage):
    """``LoadImage`` + ``ResizeExact`` in one transform (same pixels unless ``draft``).

    Args:
        scale: output size, an int for (r, r) or (width, height).
        draft: reduced-scale JPEG decoding and area resizing (faster, changes pixels: for
            training, not evaluation; see the module doc).
        interpolation: ``'bicubic'`` (official), ``'bilinear'`` or ``'nearest'`` (exact path only).
        decoder: ``'auto'`` (simplejpeg when installed, else Pillow), ``'pillow'`` or ``'simplejpeg'``.

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
                 interpolation: str = 'bicubic', decoder: str = 'auto'):
        super().__init__()
        if interpolation not in _INTERPOLATION:
            raise ValueError(f'interpolation must be one of {sorted(_INTERPOLATION)}, got {interpolation!r}')
        self.scale = _pair(scale)
        self.draft = draft
        self.interpolation = interpolation
        self.decoder = resolve_decoder(decoder)

    def transform(self, results: dict) -> dict:
        if not _encoded(results):  # arrays (CIFAR) and text-only items: the plain path
            results = super().transform(results)
            if results.get('img') is not None:
                results['img'] = np.asarray(Image.fromarray(results['img']).resize(
                    self.scale, _INTERPOLATION[self.interpolation]))
                results['img_shape'] = results['img'].shape[:2]
            return results
        where = _where(results)
        data = self._read(results, where)
        try:
            img, original = decode_resize(data, self.scale, self.draft, self.interpolation, self.decoder)
        except Exception as err:  # noqa: BLE001 - Pillow raises many types for broken files
            raise _corrupt(where, err) from err
        results.pop('img_b64', None)
        results.pop('img_bytes', None)
        results['img'] = img
        results['img_shape'], results['ori_shape'] = img.shape[:2], original
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, draft={self.draft}, '
                f'interpolation={self.interpolation!r}, decoder={self.decoder!r})')


@TRANSFORMS.register_module()
class LoadRandomResizedCrop(RandomResizedCrop):
    """``LoadImage`` + ``RandomResizedCrop`` in one transform: JPEGs decoded at the size the crop needs.

    The box is drawn exactly as ``RandomResizedCrop`` draws it (same random stream), from the
    header's size. With ``draft`` (default) an RGB or greyscale JPEG is then decoded at the largest
    DCT reduction ``r`` in (8, 4, 2) with ``box_width >= r * out_width`` and ``box_height >= r *
    out_height`` (none when no ``r`` fits), so the crop is never decoded below the output size and
    the resize only shrinks; the box snaps to the reduced grid (at most ``r / 2`` pixels) and is
    area-averaged to the output size (bicubic when a side grows). Every other input (PNG, CMYK
    JPEG, arrays, text-only items), and all input with ``draft=False``, gets the pixels of
    ``LoadImage`` + ``RandomResizedCrop``: Pillow decode, bicubic resize of the crop.

    Args:
        scale: Output size, an int for (r, r) or (width, height).
        crop_scale: Area fraction range (official: (0.9, 1.0)).
        ratio: Aspect-ratio range (width / height).
        interpolation: Resampling of the exact path: ``'bicubic'``, ``'bilinear'`` or ``'nearest'``.
        draft: Reduced-scale JPEG decoding and area resizing (training only: changes pixels).
        decoder: ``'auto'`` (simplejpeg when installed, else Pillow's draft mode: the same pixels),
            ``'pillow'`` or ``'simplejpeg'``; ``repr`` says which one is used.

    Required Keys:
        - img | img_b64 | img_bytes | img_path (text-only items pass through)
        - source (optional; where the image came from, for messages)

    Modified Keys:
        - img_b64, img_bytes (removed once decoded)

    Added Keys:
        - img (np.uint8 [scale_h, scale_w, 3], RGB)
        - img_shape, ori_shape
    """

    def __init__(self, scale: Union[int, Sequence[int]] = 224,
                 crop_scale: Tuple[float, float] = (0.9, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = 'bicubic',
                 draft: bool = True, decoder: str = 'auto'):
        super().__init__(scale, crop_scale, ratio, interpolation)
        self.draft = draft
        self.decoder = resolve_decoder(decoder)
        self._load = LoadImage()

    def _exact(self, results: dict) -> dict:
        return super().transform(self._load.transform(results))

    def transform(self, results: dict) -> dict:
        if not (self.draft and _encoded(results)):
            return self._exact(results)
        where = _where(results)
        data = LoadImage._read(results, where)
        try:
            # PNG and the like skip the header open here: the exact path opens them itself
            image, fast = open_jpeg(data) if bytes(data[:3]) == JPEG_SIGNATURE else (None, False)
            if fast:
                original = (image.height, image.width)  # before the decode reduces image.size
                box = self.get_box(image.height, image.width)
                reduction = reduction_for((box[2] - box[0], box[3] - box[1]), self.scale)
                crop = crop_reduced(decode_reduced(data, image, reduction, self.decoder), box, reduction)
        except Exception as err:  # noqa: BLE001 - Pillow raises many types for broken files
            raise _corrupt(where, err) from err
        results.pop('img_b64', None)
        if not fast:  # the exact path, on the bytes already read
            results['img_bytes'] = data
            return self._exact(results)
        results.pop('img_bytes', None)
        results['img'] = area_resize(crop, self.scale)
        results['img_shape'], results['ori_shape'] = results['img'].shape[:2], original
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, crop_scale={self.crop_scale}, ratio={self.ratio}, '
                f'interpolation={self.interpolation!r}, draft={self.draft}, decoder={self.decoder!r})')
