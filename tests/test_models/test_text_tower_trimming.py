"""Padding is trimmed on the CPU before the text tower (``trim_padding``): by ``extract_text_feat`` for raw
strings and by ``encode_texts`` per length-sorted batch, with the features of the untrimmed ids."""
import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.apis.inference import encode_texts
from cnclip_mm.models.text_encoders import trim_padding
from cnclip_mm.registry import MODELS

TEXTS = ['一只猫', '海边的一辆红色汽车停在沙滩上', '狗', '一张在夜晚拍摄的城市街道照片，路灯和行人', '蓝色方形', '车']


@pytest.fixture
def model(tiny_model_cfg):
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg).eval()


def test_trim_keeps_the_longest_text_rounded_up_and_capped():
    ids = torch.zeros(3, 52, dtype=torch.long)
    ids[0, :4] = 1
    ids[2, :11] = 1
    assert trim_padding(ids).shape == (3, 16)
    assert trim_padding(ids, pad_to_multiple_of=1).shape == (3, 11)
    assert trim_padding(ids, pad_to_multiple_of=5).shape == (3, 15)
    assert trim_padding(ids, pad_to_multiple_of=32).shape == (3, 32)
    assert trim_padding(ids, pad_to_multiple_of=64).shape == (3, 52)  # capped at the context length
    ids[1, :] = 1
    assert trim_padding(ids).shape == (3, 52)  # a text of the full length: nothing to cut
    assert torch.equal(trim_padding(ids[:, :12], pad_to_multiple_of=1), ids[:, :12])
    assert trim_padding(torch.full((2, 52), 7), pad_token_id=7).shape == (2, 8)  # all padding: one round unit
    assert trim_padding(torch.zeros(0, 52, dtype=torch.long)).shape == (0, 8)


def test_trim_errors():
    with pytest.raises(ValueError, match='pad_to_multiple_of must be >= 1, got 0'):
        trim_padding(torch.ones(2, 4, dtype=torch.long), pad_to_multiple_of=0)
    with pytest.raises(ValueError, match='trim_padding reads the lengths on the host: give CPU ids, got meta'):
        trim_padding(torch.ones(2, 4, dtype=torch.long, device='meta'))


def test_extract_text_feat_trims_strings_to_the_features_of_full_ids(model):
    full = model.tokenize(TEXTS)
    assert full.shape == (len(TEXTS), 52)
    seen = []
    model.text_encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    with torch.no_grad():
        untrimmed = model.extract_text_feat(full)
        trimmed = model.extract_text_feat(TEXTS)
    assert seen == [(len(TEXTS), 52), (len(TEXTS), 24)]  # the longest text has 21 ids
    torch.testing.assert_close(trimmed, untrimmed, atol=1e-5, rtol=0)


def test_encode_texts_batches_by_length_and_keeps_the_order(model):
    seen = []
    model.text_encoder.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    feats = encode_texts(model, TEXTS, batch_size=4)
    assert seen == [(4, 8), (2, 24)]  # the 4 shortest texts together, then the 2 long ones
    with torch.no_grad():
        expect = F.normalize(model.text_encoder(model.tokenize(TEXTS)) @ model.text_projection, dim=-1)
    torch.testing.assert_close(feats, expect, atol=1e-5, rtol=0)
    torch.testing.assert_close(encode_texts(model, TEXTS[1]), expect[1:2], atol=1e-5, rtol=0)
    assert encode_texts(model, []).shape == (0, model.embed_dim)
