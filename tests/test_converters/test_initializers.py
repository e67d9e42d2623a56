"""Weight initializers through ``init_cfg``: image tower from OpenAI CLIP, whole model from any format."""
import warnings

import pytest
import torch
from torch import nn

from cnclip_mm.models.builder import init_model
from cnclip_mm.registry import MODELS

VIT = dict(type='CLIPVisionTransformer', arch=dict(width=64, layers=2, heads=2, patch_size=8), img_size=32,
           output_dim=32)


class _OpenAICLIP(nn.Module):
    """Stand-in for OpenAI's release: ``visual.*`` plus text-side weights Chinese CLIP does not use."""

    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.token_embedding = nn.Embedding(10, 8)

    def forward(self, images):
        return self.visual(images)


@pytest.fixture(scope='module')
def openai_files(tmp_path_factory):
    torch.manual_seed(3)
    source = _OpenAICLIP(MODELS.build(VIT)).eval().half()  # OpenAI ships fp16 weights
    folder = tmp_path_factory.mktemp('openai')
    with warnings.catch_warnings():  # tracer warnings about shape-dependent branches are harmless here
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(source.float(), torch.randn(1, 3, 32, 32))
    traced.half().save(str(folder / 'ViT-tiny.pt'))
    torch.save(source.state_dict(), folder / 'open_clip_tiny.bin')
    return folder, {k[len('visual.'):]: v.float() for k, v in source.state_dict().items() if k.startswith('visual.')}


@pytest.mark.parametrize('name', ['ViT-tiny.pt', 'open_clip_tiny.bin'])
def test_image_tower_init_from_openai(openai_files, name):
    folder, expected = openai_files
    tower = MODELS.build(dict(VIT, init_cfg=dict(type='OpenAICLIPVisual', checkpoint=str(folder / name))))
    assert not torch.equal(tower.proj, expected['proj'])
    tower.init_weights()
    own = tower.state_dict()
    for key, value in expected.items():
        assert torch.equal(own[key], value), key


def test_init_cfg_inside_a_model_config(openai_files, tiny_model_cfg):
    folder, expected = openai_files
    tiny_model_cfg['image_encoder']['init_cfg'] = dict(type='OpenAICLIPVisual', checkpoint=str(folder / 'ViT-tiny.pt'))
    model = init_model(tiny_model_cfg)  # no checkpoint: init_weights runs the initializer
    assert torch.equal(model.image_encoder.conv1.weight, expected['conv1.weight'])


def test_init_mismatch_is_reported(openai_files):
    folder, _ = openai_files
    wider = dict(VIT, arch=dict(width=128, layers=2, heads=2, patch_size=8))
    tower = MODELS.build(dict(wider, init_cfg=dict(type='OpenAICLIPVisual', checkpoint=str(folder / 'ViT-tiny.pt'))))
    with pytest.raises(RuntimeError, match=r'conv1\.weight: checkpoint \(64, 3, 8, 8\) vs model \(128, 3, 8, 8\)'):
        tower.init_weights()
    tower = MODELS.build(dict(VIT, init_cfg=dict(type='OpenAICLIPVisual', checkpoint=str(folder / 'ViT-tiny.pt'),
                                                 prefix='image.')))
    with pytest.raises(KeyError, match="no keys start with 'image.'"):
        tower.init_weights()


def test_whole_model_from_any_format_via_init_cfg(official_vit, vocab_file):
    sd, path = official_vit
    cfg = init_model(checkpoint=path).cfg  # same architecture as the file
    cfg['init_cfg'] = dict(type='ChineseCLIPCheckpoint', checkpoint=path)
    cfg['tokenizer'] = dict(type='ChineseTokenizer', vocab_file=vocab_file)
    model = MODELS.build(cfg)
    assert not torch.equal(model.text_projection, sd['text_projection'])
    model.init_weights()  # what the Runner does before training
    assert torch.equal(model.text_projection, sd['text_projection'])
    assert torch.equal(model.image_encoder.transformer.resblocks[1].attn.in_proj_weight,
                       sd['visual.transformer.resblocks.1.attn.in_proj_weight'])

    cfg['embed_dim'] = 16
    cfg['image_encoder']['output_dim'] = 16
    model = MODELS.build(cfg)
    with pytest.raises(RuntimeError, match=r'text_projection: checkpoint \(48, 32\) vs model \(48, 16\)'):
        model.init_weights()
