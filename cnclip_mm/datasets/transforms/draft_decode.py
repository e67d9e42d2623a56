"""JPEG decoding at a reduced DCT scale, and the resize that follows it (the training fast path).

libjpeg(-turbo) can run its inverse DCT at 1/2, 1/4 or 1/8 of the size: a low-pass reduction that
costs less than the full decode, and that leaves the resize far fewer pixels to filter. The rule
that bounds the quality loss: the largest power-of-two reduction that keeps the region that will
be resized (a crop, or the whole image) at least the output size in both sides, so the final
resize still only shrinks (:func:`reduction_for`). Other scale factors (3/8, 5/8, ...) are not used:
libjpeg-turbo has no SIMD for them and they decode slower than the full image.

Two decoders give the same pixels (tests/test_datasets/test_fast_loading.py checks): Pillow's
``draft`` mode (always there) and simplejpeg (the ``[fast]`` extra, about 10% faster through
less per-call overhead); ``decoder='auto'`` takes simplejpeg when it is installed. Only RGB and
greyscale JPEGs take this path; CMYK JPEGs and other formats keep Pillow's full decode.
"""
import io
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from .image_modes import rgb_array

DECODERS = ('auto', 'pillow', 'simplejpeg')
_FAST_MODES = ('RGB', 'L')


def _simplejpeg():
    try:
        import simplejpeg
    except ImportError:  # optional ([fast] extra): Pillow's draft mode gives the same pixels
        return None
    return simplejpeg


def resolve_decoder(decoder: str) -> str:
    """``'auto'`` -> ``'simplejpeg'`` when installed, else ``'pillow'``; an explicit choice is checked."""
    if decoder not in DECODERS:
        raise ValueError(f'decoder must be one of {DECODERS}, got {decoder!r}')
    if decoder == 'auto':
        return 'simplejpeg' if _simplejpeg() is not None else 'pillow'
    if decoder == 'simplejpeg' and _simplejpeg() is None:
        raise ImportError("decoder='simplejpeg' needs the simplejpeg package (pip install 'cnclip-mm[fast]')")
    return decoder


def open_jpeg(data: bytes) -> Tuple[Image.Image, bool]:
    """Open (header only) encoded image bytes: (lazy image, whether the reduced-scale path applies).

    Raises what Pillow raises for data that is no image (the caller names the file).
    """
    image = Image.open(io.BytesIO(data))
    return image, image.format == 'JPEG' and image.mode in _FAST_MODES


def reduction_for(region: Sequence[int], size: Sequence[int]) -> int:
    """The largest DCT reduction (8, 4, 2, else 1) keeping ``region`` (width, height) >= ``size``."""
    for factor in (8, 4, 2):
        if region[0] >= factor * size[0] and region[1] >= factor * size[1]:
            return factor
    return 1


def decode_reduced(data: bytes, image: Image.Image, reduction: int, decoder: str) -> np.ndarray:
    """RGB uint8 pixels of the JPEG ``image`` (from :func:`open_jpeg`) at ``ceil(size / reduction)``.

    Reduced pixel ``i`` covers original pixels ``[i * reduction, (i + 1) * reduction)``.
    """
    width, height = image.size
    if decoder == 'simplejpeg':
        # min sizes of exactly ceil(size / r): the smallest libjpeg-turbo factor meeting them is 1 / r.
        return _simplejpeg().decode_jpeg(data, colorspace='RGB', min_width=-(-width // reduction),
                                         min_height=-(-height // reduction))
    if reduction > 1:
        image.draft(image.mode, (width // reduction, height // reduction))
    image.load()
    return rgb_array(image)


def crop_reduced(pixels: np.ndarray, box: Sequence[int], reduction: int) -> np.ndarray:
    """The crop ``box`` (left, top, right, bottom, original pixels) of the reduced ``pixels``.

    Each edge snaps to the nearest reduced-grid line (at most ``reduction / 2`` original pixels off,
    halves rounding up on both edges), so a side of ``reduction * n`` or more stays ``n`` or more.
    """
    left, top, right, bottom = ((2 * v + reduction) // (2 * reduction) for v in box)
    return pixels[top:max(bottom, top + 1), left:max(right, left + 1)]


def area_resize(pixels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize RGB ``pixels`` to ``size`` (width, height) with OpenCV.

    Area averaging when no side grows (antialiased, and a few times cheaper than Pillow's bicubic,
    which costs more than the decode on a full-size photo); bicubic when a side grows.
    """
    import cv2
    grows = size[0] > pixels.shape[1] or size[1] > pixels.shape[0]
    return cv2.resize(pixels, tuple(size), interpolation=cv2.INTER_CUBIC if grows else cv2.INTER_AREA)
