"""Base64 images from a request, decoded within the limits: sizes are checked on the encoded text and on
the image header before any pixel is decoded, so a decompression bomb costs nothing."""
import base64
import binascii
import io

from PIL import Image

from .errors import InputError
from .limits import Limits


def decode_image(data: str, limits: Limits, where: str) -> Image.Image:
    """An RGB PIL image from base64 (a ``data:image/...;base64,`` prefix is allowed).

    Args:
        data: the base64 text.
        limits: ``max_image_bytes`` and ``max_image_pixels`` apply.
        where: the item's name in messages (``'images[2]'``).

    Raises:
        InputError: 413 over a limit; 400 not base64, not an image, truncated or corrupt.
    """
    if data.startswith('data:'):
        data = data.partition(',')[2]
    if len(data) > (limits.max_image_bytes + 2) // 3 * 4 + 4:  # base64 is 4 characters per 3 bytes
        raise InputError(413, f'{where} holds more than {limits.max_image_bytes} bytes, over the limit '
                         f'max_image_bytes={limits.max_image_bytes}', 'image_too_large', where)
    try:
        raw = base64.b64decode(''.join(data.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InputError(400, f'{where} is not valid base64: {err}', 'invalid_base64', where) from None
    if len(raw) > limits.max_image_bytes:
        raise InputError(413, f'{where} has {len(raw)} bytes, over the limit max_image_bytes='
                         f'{limits.max_image_bytes}', 'image_too_large', where)
    if not raw:
        raise InputError(400, f'{where} is empty', 'invalid_image', where)
    try:
        image = Image.open(io.BytesIO(raw))  # reads the header only
    except Image.DecompressionBombError as err:  # PIL's own guard, far above ours, fires inside open()
        raise InputError(413, f'{where} is over the limit max_image_pixels={limits.max_image_pixels} '
                         f'(refused from its header: {err})', 'image_too_large', where) from None
    except Image.UnidentifiedImageError:
        raise InputError(400, f'{where} is not an image in a format PIL reads (PNG, JPEG, WebP, ...)',
                         'invalid_image', where) from None
    except Exception as err:  # PIL raises several types for a damaged header
        raise InputError(400, f'{where} has a damaged image header ({type(err).__name__}: {err})',
                         'invalid_image', where) from None
    width, height = image.size
    if width * height > limits.max_image_pixels:
        raise InputError(413, f'{where} is {width}x{height} = {width * height} pixels, over the limit '
                         f'max_image_pixels={limits.max_image_pixels} (refused from its header)',
                         'image_too_large', where)
    try:
        return image.convert('RGB')
    except Exception as err:
        raise InputError(400, f'{where} is truncated or corrupt ({type(err).__name__}: {err})',
                         'invalid_image', where) from None
