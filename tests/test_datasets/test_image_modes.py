"""Each Pillow mode gives the official tensor: resize-then-RGB (retrieval/training), RGB-first (zero-shot)."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_mm.registry import MODELS, TRANSFORMS

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
SIZE = 24


def _image(mode: str) -> bytes:
    """A 37x29 image of ``mode`` with varied pixels (alpha too), encoded as the format that holds it."""
    rng = np.random.default_rng(sum(map(ord, mode)))
    rgba = rng.integers(0, 256, (29, 37, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((29, 37)) < 0.3, 0, rgba[..., 3])  # fully transparent spots
    base = Image.fromarray(rgba, 'RGBA')
    if mode == 'I;16':
        img = Image.fromarray(rng.integers(0, 65536, (29, 37), dtype=np.uint16))
    elif mode == 'CMYK':  # all four inks vary: CMYK -> RGB multiplies by (255 - K), so the order matters
        img = Image.fromarray(rng.integers(0, 256, (29, 37, 4), dtype=np.uint8), 'CMYK')
    elif mode == 'P':
        img = base.convert('RGB').quantize(colors=37)
    else:
        img = base.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format='JPEG' if mode == 'CMYK' else 'PNG')
    return buf.getvalue()


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    """ToTensor + Normalize with the CLIP statistics."""
    return (torch.from_numpy(np.array(rgb)).permute(2, 0, 1).double() / 255 - MEAN) / STD


def _official(data: bytes, convert_first: bool) -> torch.Tensor:
    """Direct Pillow: the official readers' order (16-bit scaled to 8 bits first, as documented)."""
    img = Image.open(io.BytesIO(data))
    if img.mode.startswith('I'):
        img = Image.fromarray(np.rint(np.asarray(img, dtype=np.float64) / 257).astype(np.uint8), 'L')
    if convert_first:
        return _tensor(np.asarray(img.convert('RGB').resize((SIZE, SIZE), Image.BICUBIC)))
    return _tensor(np.asarray(img.resize((SIZE, SIZE), Image.BICUBIC).convert('RGB')))


def _pipeline(data: bytes, convert_rgb: str) -> torch.Tensor:
    results = dict(img_bytes=data, image_id=1)
    for step in (dict(type='LoadImage', convert_rgb=convert_rgb), dict(type='ResizeExact', scale=SIZE),
                 dict(type='PackCLIPInputs')):
        results = TRANSFORMS.build(step)(results)
    batch = MODELS.build(dict(type='CLIPDataPreprocessor'))(dict(inputs=[results['inputs']],
                                                                 data_samples=[results['data_samples']]))
    return batch['inputs']['images'][0].double()


@pytest.mark.parametrize('mode', ['RGB', 'L', 'LA', 'RGBA', 'P', 'CMYK', 'I;16'])
def test_every_mode_matches_the_official_order(mode):
    data = _image(mode)
    assert Image.open(io.BytesIO(data)).mode in (mode, 'I')  # 16-bit PNGs open as I;16 or I
    for convert_first in (False, True):
        ours = _pipeline(data, 'first' if convert_first else 'after_resize')
        assert torch.allclose(ours, _official(data, convert_first), atol=1e-6, rtol=0), (mode, convert_first)


def test_order_matters_for_alpha_palette_and_cmyk():
    for mode in ('LA', 'RGBA', 'P', 'CMYK'):
        data = _image(mode)
        assert (_official(data, True) - _official(data, False)).abs().max() > 0.1, mode


def test_16bit_grey_is_scaled_not_saturated():
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(buf, format='PNG')
    out = TRANSFORMS.build(dict(type='LoadImage'))(dict(img_bytes=buf.getvalue(), image_id=1))
    assert out['img'].dtype == np.uint8 and np.all(out['img'] == 128)  # round(32768 / 257)


def test_random_resized_crop_resizes_in_the_source_mode():
    data = _image('RGBA')
    results = TRANSFORMS.build(dict(type='LoadImage'))(dict(img_bytes=data, image_id=1))
    assert results['img_pil'].mode == 'RGBA'
    crop = TRANSFORMS.build(dict(type='RandomResizedCrop', scale=SIZE, crop_scale=(1.0, 1.0), ratio=(37 / 29,
                                                                                                 37 / 29)))
    out = crop(results)
    expected = Image.open(io.BytesIO(data)).resize((SIZE, SIZE), Image.BICUBIC, box=(0, 0, 37, 29))
    assert 'img_pil' not in out and np.array_equal(out['img'], np.asarray(expected.convert('RGB')))
