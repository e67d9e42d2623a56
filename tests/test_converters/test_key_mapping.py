"""Pure key/tensor mappings between the official, Hugging Face, mmpretrain and own layouts."""
import pytest
import torch
from ckpt_builders import official_rn_state_dict, official_vit_state_dict

from cnclip_mm.models.converters import (
    detect_format,
    hf_to_mm,
    mm_to_hf,
    mm_to_mmpretrain,
    mm_to_official,
    mmpretrain_to_mm,
    official_to_mm,
)


def _equal(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope='module')
def vit_mm():
    torch.manual_seed(0)
    return official_to_mm(official_vit_state_dict())


@pytest.fixture(scope='module')
def rn_mm():
    torch.manual_seed(1)
    return official_to_mm(official_rn_state_dict())


def test_official_to_mm_names():
    sd = official_vit_state_dict(layers=1)
    ddp = {'module.' + k: v for k, v in sd.items()}
    mm = official_to_mm(ddp)
    assert torch.equal(mm['image_encoder.transformer.resblocks.0.attn.in_proj_weight'],
                       sd['visual.transformer.resblocks.0.attn.in_proj_weight'])
    assert torch.equal(mm['text_encoder.bert.encoder.layer.0.attention.self.query.weight'],
                       sd['bert.encoder.layer.0.attention.self.query.weight'])
    assert 'text_projection' in mm and 'logit_scale' in mm
    assert not any(k.startswith(('visual.', 'bert.', 'module.')) or 'pooler' in k for k in mm)
    # back again: everything but the unused pooler survives
    back = mm_to_official(mm)
    _equal(back, {k: v for k, v in ddp.items() if 'pooler' not in k})


def test_hf_mapping_splits_qkv_in_order_and_transposes(vit_mm):
    hf = mm_to_hf(vit_mm)
    packed = vit_mm['image_encoder.transformer.resblocks.1.attn.in_proj_weight']
    width = packed.shape[1]
    for i, name in enumerate('qkv'):
        assert torch.equal(hf[f'vision_model.encoder.layers.1.self_attn.{name}_proj.weight'],
                           packed[i * width:(i + 1) * width])
    assert torch.equal(hf['visual_projection.weight'], vit_mm['image_encoder.proj'].t())
    assert torch.equal(hf['text_projection.weight'], vit_mm['text_projection'].t())
    assert 'vision_model.pre_layrnorm.weight' in hf and 'vision_model.post_layernorm.bias' in hf
    assert torch.equal(hf['vision_model.embeddings.position_embedding.weight'],
                       vit_mm['image_encoder.positional_embedding'])
    assert torch.equal(hf['text_model.embeddings.word_embeddings.weight'],
                       vit_mm['text_encoder.bert.embeddings.word_embeddings.weight'])
    _equal(hf_to_mm(hf), vit_mm)


def test_hf_to_mm_drops_pooler_and_buffers_and_names_missing_qkv(vit_mm):
    hf = mm_to_hf(vit_mm)
    hf['text_model.pooler.dense.weight'] = torch.zeros(2, 2)
    hf['text_model.embeddings.position_ids'] = torch.arange(4)[None]
    _equal(hf_to_mm(hf), vit_mm)
    del hf['vision_model.encoder.layers.0.self_attn.k_proj.bias']
    with pytest.raises(KeyError, match=r'layers\.0\.self_attn\.k_proj\.bias'):
        hf_to_mm(hf)


def test_mm_to_hf_rejects_resnet(rn_mm):
    with pytest.raises(ValueError, match='no ResNet image tower'):
        mm_to_hf(rn_mm)


def test_mmpretrain_vit_layout(vit_mm):
    mmp = mm_to_mmpretrain(vit_mm)
    assert mmp['vision_backbone.cls_token'].shape == (1, 1, 64)
    assert mmp['vision_backbone.pos_embed'].shape == (1, 17, 64)
    assert torch.equal(mmp['vision_backbone.layers.0.attn.qkv.weight'],
                       vit_mm['image_encoder.transformer.resblocks.0.attn.in_proj_weight'])
    assert torch.equal(mmp['vision_backbone.layers.1.ffn.layers.0.0.bias'],
                       vit_mm['image_encoder.transformer.resblocks.1.mlp.c_fc.bias'])
    assert torch.equal(mmp['vision_backbone.ln1.weight'], vit_mm['image_encoder.ln_post.weight'])
    assert torch.equal(mmp['vision_backbone.pre_norm.bias'], vit_mm['image_encoder.ln_pre.bias'])
    assert torch.equal(mmp['vision_projection'], vit_mm['image_encoder.proj'])
    assert 'text_backbone.encoder.layer.0.output.dense.weight' in mmp
    # mmpretrain's ViT has a patch-embedding bias; zero converts away, anything else is refused
    mmp['vision_backbone.patch_embed.projection.bias'] = torch.zeros(64)
    _equal(mmpretrain_to_mm(mmp), vit_mm)
    mmp['vision_backbone.patch_embed.projection.bias'] = torch.ones(64)
    with pytest.raises(ValueError, match='patch_embed.projection.bias'):
        mmpretrain_to_mm(mmp)


def test_mmpretrain_rn_layout(rn_mm):
    mmp = mm_to_mmpretrain(rn_mm)
    assert 'vision_backbone.attnpool.c_proj.weight' in mmp
    assert 'vision_backbone.layer2.0.downsample.1.running_var' in mmp
    assert 'vision_projection' not in mmp
    _equal(mmpretrain_to_mm(mmp), rn_mm)


def test_detect_format(vit_mm):
    official = mm_to_official(vit_mm)
    assert detect_format(official) == 'official'
    assert detect_format([k[len('module.'):] for k in official]) == 'official'
    assert detect_format(vit_mm) == 'mm'
    assert detect_format(mm_to_hf(vit_mm)) == 'hf'
    assert detect_format(mm_to_mmpretrain(vit_mm)) == 'mmpretrain'
    with pytest.raises(ValueError, match=r"unknown checkpoint layout.*'backbone\.conv\.weight'"):
        detect_format(['backbone.conv.weight', 'head.fc.bias'])
