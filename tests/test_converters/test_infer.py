"""Architecture inference for the released variants, from shapes only (meta tensors: nothing allocated)."""
import pytest
import torch
from ckpt_builders import official_rn_state_dict

from cnclip_mm.models.converters import infer_model_cfg, official_to_mm
from cnclip_mm.registry import MODELS


def _vit(width, layers, patch, img, embed, hidden, text_layers, inter):
    sd = {'image_encoder.conv1.weight': torch.empty(width, 3, patch, patch, device='meta'),
          'image_encoder.positional_embedding': torch.empty((img // patch) ** 2 + 1, width, device='meta'),
          'image_encoder.proj': torch.empty(width, embed, device='meta')}
    for i in range(layers):
        sd[f'image_encoder.transformer.resblocks.{i}.mlp.c_fc.weight'] = torch.empty(4 * width, width, device='meta')
    return _bert(sd, hidden, text_layers, inter, embed)


def _bert(sd, hidden, layers, inter, embed):
    sd['text_encoder.bert.embeddings.word_embeddings.weight'] = torch.empty(21128, hidden, device='meta')
    sd['text_encoder.bert.embeddings.position_embeddings.weight'] = torch.empty(512, hidden, device='meta')
    sd['text_encoder.bert.embeddings.token_type_embeddings.weight'] = torch.empty(2, hidden, device='meta')
    for i in range(layers):
        sd[f'text_encoder.bert.encoder.layer.{i}.intermediate.dense.weight'] = torch.empty(inter, hidden, device='meta')
    sd['text_projection'] = torch.empty(hidden, embed, device='meta')
    return sd


@pytest.mark.parametrize('shapes,vit_arch,text_arch', [
    ((768, 12, 16, 224, 512, 768, 12, 3072), 'b-16', 'base'),
    ((1024, 24, 14, 224, 768, 768, 12, 3072), 'l-14', 'base'),
    ((1024, 24, 14, 336, 768, 768, 12, 3072), 'l-14-336', 'base'),
    ((1280, 32, 14, 224, 1024, 1024, 24, 4096), 'h-14', 'large'),
])
def test_vit_presets(shapes, vit_arch, text_arch):
    cfg = infer_model_cfg(_vit(*shapes), 'official')
    assert cfg['image_encoder'] == dict(type='CLIPVisionTransformer', arch=vit_arch, img_size=shapes[3],
                                        output_dim=shapes[4])
    assert cfg['text_encoder'] == dict(type='ChineseBertEncoder', arch=text_arch, vocab_size=21128)
    assert cfg['embed_dim'] == shapes[4]
    assert cfg['tokenizer']['vocab_file'] is None  # the shipped vocab


def test_h14_head_width_80_builds():
    cfg = infer_model_cfg(_vit(1280, 32, 14, 224, 1024, 1024, 24, 4096))
    with torch.device('meta'):
        tower = MODELS.build(cfg['image_encoder'])
    assert tower.heads == 16 and tower.width // tower.heads == 80


def test_rn50_preset_and_rbt3():
    with torch.device('meta'):
        sd = official_to_mm(official_rn_state_dict(blocks=(3, 4, 6, 3), width=64, img=224, embed=1024))
    sd = {k: v for k, v in sd.items() if not k.startswith('text_encoder.')}
    sd = _bert(sd, 768, 3, 3072, 1024)
    cfg = infer_model_cfg(sd, 'official')
    assert cfg['image_encoder'] == dict(type='ModifiedResNet', arch='rn50', img_size=224, output_dim=1024)
    assert cfg['text_encoder']['arch'] == 'rbt3'


def test_inference_errors():
    sd = _vit(64, 2, 8, 32, 32, 48, 2, 96)
    with pytest.raises(KeyError, match='text_projection'):
        infer_model_cfg({k: v for k, v in sd.items() if k != 'text_projection'})
    sd['image_encoder.transformer.resblocks.0.mlp.c_fc.weight'] = torch.empty(100, 64, device='meta')
    with pytest.raises(ValueError, match='MLP width 100'):
        infer_model_cfg(sd)
    sd = _vit(64, 2, 8, 32, 32, 48, 2, 96)
    sd['image_encoder.transformer.resblocks.5.ln_1.weight'] = torch.empty(64, device='meta')
    with pytest.raises(KeyError, match='not contiguous'):
        infer_model_cfg(sd)


def test_hf_config_supplies_heads_and_text_settings():
    sd = _vit(64, 2, 8, 32, 32, 48, 2, 96)
    hf_config = dict(vision_config=dict(num_attention_heads=4, hidden_act='quick_gelu', layer_norm_eps=1e-5),
                     text_config=dict(num_attention_heads=3, layer_norm_eps=1e-5, hidden_act='gelu_new'))
    cfg = infer_model_cfg(sd, 'hf', dict(hf_config=hf_config, vocab_file='/some/folder'))
    assert cfg['image_encoder']['arch']['heads'] == 4
    assert cfg['text_encoder']['arch'] == dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                               intermediate_size=96, layer_norm_eps=1e-5, hidden_act='gelu_new')
    assert cfg['tokenizer']['vocab_file'] == '/some/folder'
    with torch.device('meta'):
        text = MODELS.build(cfg['text_encoder'])
    assert text.config.layer_norm_eps == 1e-5 and text.config.hidden_act == 'gelu_new'
    hf_config['vision_config']['hidden_act'] = 'gelu'
    with pytest.raises(ValueError, match="hidden_act='gelu'"):
        infer_model_cfg(sd, 'hf', dict(hf_config=hf_config))
