"""Official Chinese-CLIP .pt files: loading, inferred architecture, and official -> mm -> hf -> mm."""
import pytest
import torch
from ckpt_builders import VOCAB

from cnclip_mm.models.builder import init_model
from cnclip_mm.models.converters import export_hf, load_state_dict_any, official_to_mm


def _assert_loaded(model, official_sd):
    own = model.state_dict()
    for key, value in official_to_mm(official_sd).items():
        assert torch.equal(own[key], value), key


def test_official_vit_loads_with_inferred_config(official_vit, vocab_file):
    sd, path = official_vit
    state_dict, fmt, extra = load_state_dict_any(path)
    assert fmt == 'official'
    assert extra['checkpoint'] == dict(epoch=3, step=120, name='tiny')
    assert not any(k.startswith('module.') or 'pooler' in k for k in state_dict)

    model = init_model(checkpoint=path, vocab_file=vocab_file)
    vision = model.cfg['image_encoder']
    assert vision['type'] == 'CLIPVisionTransformer'
    assert vision['arch'] == dict(width=64, layers=2, heads=1, patch_size=8)
    assert (vision['img_size'], vision['output_dim'], model.cfg['embed_dim']) == (32, 32, 32)
    text = model.cfg['text_encoder']
    assert text['arch'] == dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=1, intermediate_size=96,
                                max_position_embeddings=64)
    assert text['vocab_size'] == VOCAB
    _assert_loaded(model, sd)
    assert not model.training
    feats = model.extract_text_feat(['一只猫', '两只狗在草地上'])
    assert feats.shape == (2, 32)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(2))


def test_official_rn50_layout_loads(official_rn):
    sd, path = official_rn
    model = init_model(checkpoint=path)
    vision = model.cfg['image_encoder']
    assert vision['type'] == 'ModifiedResNet'
    assert vision['arch'] == dict(layers=(1, 1, 1, 1), width=8)
    assert (vision['img_size'], vision['output_dim']) == (64, 32)
    _assert_loaded(model, sd)
    # the BatchNorm statistics came from the file, so eval-mode features are deterministic
    images = torch.randn(2, 3, 64, 64)
    assert torch.equal(model.extract_image_feat(images), model.extract_image_feat(images))
    with pytest.raises(ValueError, match='no ModifiedResNet image tower'):
        export_hf(model, 'unused')


def test_round_trip_official_mm_hf_mm(official_vit, vocab_file, tmp_path):
    _, path = official_vit
    first, _, _ = load_state_dict_any(path)
    model = init_model(checkpoint=path, vocab_file=vocab_file)
    out = export_hf(model, str(tmp_path / 'hf'))
    second, fmt, extra = load_state_dict_any(out)
    assert fmt == 'hf' and extra['vocab_file'] == out
    assert sorted(first) == sorted(second)
    for key in first:
        assert torch.equal(first[key], second[key]), key
    # rebuilt from the export alone (its config.json and vocab), the model gives the same features
    again = init_model(checkpoint=out)
    images = torch.randn(2, 3, 32, 32)
    texts = ['北京天安门', 'a photo of 3 cats。']
    assert torch.equal(model.extract_image_feat(images), again.extract_image_feat(images))
    assert torch.equal(model.extract_text_feat(texts), again.extract_text_feat(texts))
