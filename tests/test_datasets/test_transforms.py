"""Transforms: decoding, Pillow-exact resizing, augmentation, text, packing, and the eval pipeline."""
import base64
import io
import random

import numpy as np
import pytest
import torch
from data_writers import make_image
from mmengine.dataset import Compose, pseudo_collate
from PIL import Image

from cnclip_mm.datasets.bad_samples import BadSampleError
from cnclip_mm.datasets.transforms import (
    CleanCaption,
    LoadImage,
    PackCLIPInputs,
    RandAugment,
    RandomResizedCrop,
    ResizeExact,
    TokenizeText,
)
from cnclip_mm.datasets.transforms.augment import OPS
from cnclip_mm.registry import MODELS


def noise(h=45, w=61, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_load_image_from_every_source(tmp_path):
    png = make_image(3, fmt='PNG')
    path = tmp_path / 'x.png'
    path.write_bytes(png)
    expected = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))
    for results in (dict(img_path=str(path)), dict(img_bytes=png),
                    dict(img_b64=base64.b64encode(png)), dict(img_b64=base64.urlsafe_b64encode(png).decode()),
                    dict(img=expected.copy())):
        out = LoadImage()(results)
        assert np.array_equal(out['img'], expected) and out['img_shape'] == expected.shape[:2]
        assert 'img_b64' not in out and 'img_bytes' not in out


def test_load_image_converts_grey_and_rgba_to_rgb():
    for mode in ('L', 'RGBA', 'P'):
        buf = io.BytesIO()
        Image.new(mode, (5, 4)).save(buf, format='PNG')
        assert LoadImage()(dict(img_bytes=buf.getvalue()))['img'].shape == (4, 5, 3)


def test_load_image_passes_text_items():
    item = dict(text='猫', text_id=3, gt_image_ids=[1])
    assert LoadImage()(dict(item)) == item
    with pytest.raises(BadSampleError, match='no image data'):
        LoadImage()(dict(image_id=5, source='imgs key 5'))


@pytest.mark.parametrize('size', [224, 37, (30, 20)])
def test_resize_exact_equals_pillow_bicubic(size):
    img = noise()
    out = ResizeExact(scale=size)(dict(img=img))['img']
    wh = (size, size) if isinstance(size, int) else size
    expected = np.asarray(Image.fromarray(img).resize(wh, Image.BICUBIC))
    assert out.shape == (wh[1], wh[0], 3) and np.array_equal(out, expected)


def test_random_resized_crop():
    img = noise(40, 60)
    np.random.seed(0)
    crop = RandomResizedCrop(scale=32)
    for _ in range(20):
        left, top, right, bottom = crop.get_box(40, 60)
        area = (right - left) * (bottom - top)
        assert 0 <= left < right <= 60 and 0 <= top < bottom <= 40
        assert 0.9 * 2400 - 80 <= area <= 2400
        assert crop(dict(img=img))['img'].shape == (32, 32, 3)
    # The draws: area fractions spread over [0.9, 1], aspects on both sides of square, all in range.
    boxes = np.array([crop.get_box(64, 64) for _ in range(2000)])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert 0.92 < (w * h / 4096).mean() < 0.96 and (w * h / 4096).min() > 0.88
    assert ((w / h) < 1).any() and ((w / h) > 1).any() and len(np.unique(boxes[:, 0])) > 4
    assert (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 64).all()
    # No draw can fit: the largest centre crop with an aspect in range.
    assert RandomResizedCrop(scale=32, crop_scale=(1.0, 1.0), ratio=(2.0, 3.0)).get_box(64, 64) == (0, 16, 64, 48)
    # The official crop (torchvision's resized_crop under timm): crop, then resize the crop; the filter
    # stops at the crop's edges (Pillow's resize(box=...) would weigh the pixels outside it).
    np.random.seed(3)
    box = crop.get_box(40, 60)
    np.random.seed(3)
    expected = Image.fromarray(img).crop(box).resize((32, 32), Image.BICUBIC)
    assert np.array_equal(crop(dict(img=img))['img'], np.asarray(expected))
    assert not np.array_equal(np.asarray(expected), np.asarray(Image.fromarray(img).resize((32, 32), Image.BICUBIC,
                                                                                         box=box)))
    # a crop of the whole image is exactly the official resize
    whole = RandomResizedCrop(scale=32, crop_scale=(1.0, 1.0), ratio=(1.5, 1.5))
    assert np.array_equal(whole(dict(img=img))['img'], ResizeExact(32)(dict(img=img))['img'])
    with pytest.raises(ValueError):
        RandomResizedCrop(crop_scale=(0.5, 1.2))


def test_rand_augment_ops_and_policy():
    img = noise(32, 32)
    for name, op in OPS.items():
        out = np.asarray(op(Image.fromarray(img), 0.9))
        assert out.shape == (32, 32, 3), name
    random.seed(0)
    aug = RandAugment(num_ops=2, magnitude=9, prob=1.0)
    changed = sum(not np.array_equal(aug(dict(img=img))['img'], img) for _ in range(10))
    assert changed >= 8
    assert RandAugment(prob=0.0)(dict(img=img))['img'].tolist() == img.tolist()
    with pytest.raises(ValueError, match='unknown ops'):
        RandAugment(ops=['Blur'])


def test_clean_caption():
    out = CleanCaption()(dict(text='  一只“猫”\t在\u200b睡觉 \n\n '))
    assert out['text'] == '一只"猫" 在睡觉'
    assert CleanCaption(lower=True)(dict(text='ABC猫'))['text'] == 'abc猫'
    with pytest.raises(BadSampleError, match='texts.jsonl line 4: caption empty'):
        CleanCaption()(dict(text=' \u200b ', text_source='texts.jsonl line 4'))


def test_tokenize_text_and_truncation(vocab_file):
    tok = TokenizeText(dict(type='ChineseTokenizer', vocab_file=vocab_file), context_length=8)
    ids = tok(dict(text='一只猫'))['text_ids']
    assert ids.dtype == torch.long and ids.shape == (8,)
    assert ids[0] == 101 and ids[4] == 102 and ids[5:].tolist() == [0, 0, 0]
    assert tok.num_truncated == 0
    exact = tok(dict(text='一二三四五六'))['text_ids']  # 6 tokens fit exactly: not truncated
    assert exact[-1] == 102 and tok.num_truncated == 0
    long = tok(dict(text='一二三四五六七八九十', text_source='t.jsonl line 9'))['text_ids']
    assert long.shape == (8,) and long[-1] == 102 and tok.num_truncated == 1
    # Counted for the per-epoch report (TruncationReportHook), with where it came from.
    assert tok.truncation.seen == 3 and tok.truncation.examples == ["t.jsonl line 9 '一二三四五六七八九十'..."]
    assert 'text_ids' not in tok(dict(image_id=1))


def test_tokenize_text_cache(vocab_file, monkeypatch):
    cfg = dict(type='ChineseTokenizer', vocab_file=vocab_file)
    cached, plain = TokenizeText(cfg, context_length=8, cache_size=2), TokenizeText(cfg, context_length=8, cache_size=0)
    calls = []
    encode = cached.tokenizer.encode
    monkeypatch.setattr(cached.tokenizer, 'encode', lambda *a, **kw: calls.append(a[0]) or encode(*a, **kw))
    texts = ['一只猫', '一二三四五六七八九十', '一只狗', '一只猫', '一二三四五六七八九十', '一只狗']
    outs = [cached(dict(text=t))['text_ids'] for t in texts]
    for text, ids in zip(texts, outs):
        assert ids.dtype == torch.long and torch.equal(ids, plain(dict(text=text))['text_ids'])
    assert calls == ['一只猫', '一二三四五六七八九十', '一只狗', '一只狗']  # two kept, the third never
    assert len(cached._cache) == 2 and plain._cache == {}
    assert cached.num_truncated == plain.num_truncated == 2  # a cached truncated caption still counts
    outs[3][0] = -1  # each result is its own tensor: the cache is not written through
    assert cached(dict(text='一只猫'))['text_ids'][0] == 101


def test_pack_clip_inputs():
    packed = PackCLIPInputs()(dict(img=noise(4, 6), image_id=7, text='猫', text_ids=torch.tensor([101, 102]),
                                   gt_label=3, source='ignored'))
    assert packed['inputs'].dtype == torch.uint8 and packed['inputs'].shape == (3, 4, 6)
    sample = packed['data_samples']
    assert sample.image_id == 7 and sample.text == '猫' and sample.text_ids.tolist() == [101, 102]
    assert sample.gt_label.tolist() == [3] and 'source' not in sample.metainfo
    text_only = PackCLIPInputs()(dict(text_id=1, gt_image_ids=[2, 3]))
    assert text_only['inputs'] is None and text_only['data_samples'].gt_image_ids == [2, 3]


def test_eval_pipeline_and_preprocessor_match_hand_computed(tmp_path):
    png = make_image(5, size=(50, 30), fmt='PNG')
    pipe = Compose([dict(type='LoadImage'), dict(type='ResizeExact', scale=24), dict(type='PackCLIPInputs')])
    batch = pseudo_collate([pipe(dict(img_bytes=png, image_id=1))])
    out = MODELS.build(dict(type='CLIPDataPreprocessor'))(batch)['inputs']['images']
    resized = np.asarray(Image.open(io.BytesIO(png)).convert('RGB').resize((24, 24), Image.BICUBIC))
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    expected = ((resized / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    assert out.shape == (1, 3, 24, 24)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
