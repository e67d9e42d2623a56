"""LoadResizeImage: the official pixels (PIL decode + bicubic resize) unless draft decoding is asked for."""
import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_mm.datasets.bad_samples import BadSampleError
from cnclip_mm.datasets.transforms import LoadImage, LoadResizeImage, ResizeExact
from cnclip_mm.models.data_preprocessor import CLIP_MEAN, CLIP_STD, CLIPDataPreprocessor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
from data_throughput import make_jpegs  # noqa: E402


@pytest.fixture(scope='module')
def jpegs():
    return make_jpegs(4)  # 500x375, 640x480, 800x600, 1024x768, quality 90


def _grey_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(48 * 40, dtype=np.uint8).reshape(40, 48) % 251).save(buf, format='PNG')
    return buf.getvalue()


def test_exact_pixels_and_official_tensor(jpegs, tmp_path):
    fast, load, resize = LoadResizeImage(scale=224), LoadImage(), ResizeExact(scale=224)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    batch, reference = [], []
    for i, data in enumerate(jpegs + [_grey_png()]):
        path = tmp_path / f'{i}.img'
        path.write_bytes(data)
        for item in (dict(img_bytes=data), dict(img_b64=base64.b64encode(data).decode()),
                     dict(img_path=str(path))):
            got = fast(dict(item))
            want = resize(load(dict(item)))
            np.testing.assert_array_equal(got['img'], want['img'])
            assert got['ori_shape'] == want['ori_shape'] and got['img_shape'] == (224, 224)
        batch.append(got['img'])
        # The reference pipeline: PIL open, RGB, bicubic resize, to [0, 1] tensor, normalise per image.
        img = Image.open(io.BytesIO(data)).convert('RGB').resize((224, 224), Image.BICUBIC)
        reference.append((torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 - mean) / std)
    ours = CLIPDataPreprocessor().normalize(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2))
    torch.testing.assert_close(ours, torch.stack(reference), atol=1e-5, rtol=0)


def test_draft_is_close_but_an_option(jpegs):
    exact = LoadResizeImage(scale=224)(dict(img_bytes=jpegs[3]))['img'].astype(int)
    draft = LoadResizeImage(scale=224, draft=True)(dict(img_bytes=jpegs[3]))
    assert draft['ori_shape'] == (768, 1024)
    diff = np.abs(draft['img'].astype(int) - exact)
    assert 0 < diff.mean() < 2  # pixels change, a little
    assert 'draft=True' in repr(LoadResizeImage(draft=True))
    # Not twice the target in both sides: a full decode, then OpenCV: area when a side shrinks by 2
    # or more, bilinear for less, cubic when enlarging.
    import cv2
    full = LoadImage()(dict(img_bytes=jpegs[0]))['img']  # 500x375
    for scale, flag in ((224, cv2.INTER_AREA), (300, cv2.INTER_LINEAR), (600, cv2.INTER_CUBIC)):
        got = LoadResizeImage(scale=scale, draft=True)(dict(img_bytes=jpegs[0]))['img']
        np.testing.assert_array_equal(got, cv2.resize(full, (scale, scale), interpolation=flag))


def test_draft_without_simplejpeg_uses_pillow_draft(jpegs, monkeypatch):
    from cnclip_mm.datasets.transforms import fast_loading
    with_turbo = LoadResizeImage(scale=224, draft=True)(dict(img_bytes=jpegs[3]))['img'].astype(int)
    monkeypatch.setattr(fast_loading, '_simplejpeg', lambda: None)
    exact = LoadResizeImage(scale=224)(dict(img_bytes=jpegs[3]))['img'].astype(int)
    pillow = LoadResizeImage(scale=224, draft=True)(dict(img_bytes=jpegs[3]))['img'].astype(int)
    assert pillow.shape == (224, 224, 3) and 0 < np.abs(pillow - exact).mean() < 2
    assert np.abs(pillow - with_turbo).mean() < 1  # both reduce 1024x768 in the DCT domain


def test_arrays_text_only_and_bad_bytes():
    arr = np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    out = LoadResizeImage(scale=16)(dict(img=arr))
    np.testing.assert_array_equal(out['img'], ResizeExact(scale=16)(dict(img=arr))['img'])
    assert LoadResizeImage()(dict(text='仅文本')) == dict(text='仅文本')
    with pytest.raises(BadSampleError, match='row 7: corrupt'):
        LoadResizeImage()(dict(img_bytes=b'\xff\xd8not a jpeg', source='row 7'))
