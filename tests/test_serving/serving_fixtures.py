"""Helpers of the service tests: the tiny config, the small limits, base64 test images."""
import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from cnclip_mm.serving import Limits

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = str(REPO / 'configs' / '_base_' / 'models' / 'tiny.py')
API_KEY = 'test-key-7f3a'
# small limits, so each one is reachable with small inputs
LIMITS = Limits(max_batch_size=8, max_text_chars=200, max_image_bytes=300_000, max_image_pixels=512 * 512,
                max_request_bytes=16 << 20, max_classes=20, max_top_k=10)


def image_b64(width: int = 48, height: int = 40, seed: int = 0, fmt: str = 'PNG') -> str:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def decode_b64_image(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data))).convert('RGB')


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` RGB pixels but holds almost no data: only a check of the header
    can refuse it as too large (decoding it would fail as truncated, after allocating the pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))
