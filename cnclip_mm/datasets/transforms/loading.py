"""Decoding images from a path, raw bytes or base64 text into RGB arrays."""
import base64
import binascii
import io

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from cnclip_mm.registry import TRANSFORMS

from ..bad_samples import BadSampleError
from .image_modes import rgb_array, to_8bit

JPEG_SIGNATURE = b'\xff\xd8\xff'  # every JPEG starts with SOI and a marker
_SOURCES = ('img', 'img_b64', 'img_bytes', 'img_path')
_URLSAFE = bytes.maketrans(b'-_', b'+/')


def decode_base64(data) -> bytes:
    """Decode standard or URL-safe base64 (the official files use either); strict about junk."""
    if isinstance(data, str):
        data = data.encode('ascii', errors='replace')
    data = bytes(data).strip().translate(_URLSAFE)
    data += b'=' * (-len(data) % 4)
    return base64.b64decode(data, validate=True)


def pil_from_bytes(data: bytes) -> Image.Image:
    """Open and fully decode an image (so a truncated file fails here, not later)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@TRANSFORMS.register_module()
class LoadImage(BaseTransform):
    """Decode the item's image into an RGB ``uint8`` array.

    The source is the first present of ``img`` (already an array, e.g. CIFAR), ``img_b64``,
    ``img_bytes`` or ``img_path``. A missing or undecodable image raises
    :class:`BadSampleError` naming ``source`` (file and line / key), which the dataset turns into
    an error or a counted skip. Text-only items (retrieval texts: no image source and no
    ``image_id``) pass through unchanged.

    ``img`` is always the RGB array of the decoded image (16-bit images scaled to 8 bits, see
    ``image_modes``). With ``convert_rgb='after_resize'`` (default: the official retrieval and training
    readers) a non-RGB image is also kept in ``img_pil``, so that the next ``ResizeExact`` /
    ``RandomResizedCrop`` resizes it in its own mode and converts afterwards, as the official code does;
    ``'first'`` converts before anything (the official zero-shot ImageFolder path).

    Args:
        convert_rgb: ``'after_resize'`` or ``'first'``.

    Required Keys:
        - img | img_b64 | img_bytes | img_path
        - source (optional; where the image came from, for messages)

    Modified Keys:
        - img_b64, img_bytes (removed once decoded)

    Added Keys:
        - img (np.uint8 [H, W, 3], RGB)
        - img_pil (PIL image in its decoded mode; non-RGB sources with ``'after_resize'`` only)
        - img_shape, ori_shape ((H, W))
    """

    def __init__(self, convert_rgb: str = 'after_resize'):
        if convert_rgb not in ('after_resize', 'first'):
            raise ValueError(f"LoadImage: convert_rgb must be 'after_resize' or 'first', got {convert_rgb!r}")
        self.convert_rgb = convert_rgb

    def transform(self, results: dict) -> dict:
        where = results.get('source') or results.get('img_path') or 'image'
        if 'image_id' not in results and not any(results.get(k) is not None for k in _SOURCES):
            return results
        if results.get('img') is not None:
            img = np.asarray(results['img'])
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise BadSampleError(f'{where}: expected an RGB uint8 array, got {img.dtype} {img.shape}')
        else:
            decoded = to_8bit(self._decode(results, where))
            img = rgb_array(decoded)
            if self.convert_rgb == 'after_resize' and decoded.mode != 'RGB':
                results['img_pil'] = decoded
        results.pop('img_b64', None)
        results.pop('img_bytes', None)
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        return results

    @staticmethod
    def _decode(results: dict, where: str) -> Image.Image:
        data = LoadImage._read(results, where)
        try:
            return pil_from_bytes(data)
        except Exception as err:  # noqa: BLE001 - Pillow raises many types for broken files
            raise BadSampleError(f'{where}: corrupt or truncated image ({type(err).__name__}: {err})') from err

    @staticmethod
    def _read(results: dict, where: str) -> bytes:
        """The encoded image bytes of the item's first present source."""
        if results.get('img_b64') is not None:
            try:
                data = decode_base64(results['img_b64'])
            except (binascii.Error, ValueError) as err:
                raise BadSampleError(f'{where}: invalid base64 ({err})') from err
        elif results.get('img_bytes') is not None:
            data = results['img_bytes']
        elif results.get('img_path'):
            try:
                with open(results['img_path'], 'rb') as f:
                    data = f.read()
            except OSError as err:
                raise BadSampleError(f'{where}: cannot read image file ({err})') from err
        else:
            raise BadSampleError(f'{where}: no image data (need img, img_b64, img_bytes or img_path)')
        return data
