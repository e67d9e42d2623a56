"""init_model: config as path / Config / dict, with or without a checkpoint, tokenizer selection."""
import pytest
import torch
from mmengine.config import Config

from cnclip_mm.apis.init_model import init_model
from cnclip_mm.models.converters import CheckpointMismatchError, mm_to_official


def _write_config(path, model_cfg):
    path.write_text(Config(dict(model=model_cfg)).pretty_text, encoding='utf-8')
    return str(path)


def test_config_forms_build_the_same_model(tiny_model_cfg, tmp_path):
    path = _write_config(tmp_path / 'tiny.py', tiny_model_cfg)
    models = [init_model(path), init_model(Config.fromfile(path)), init_model(dict(model=tiny_model_cfg)),
              init_model(tiny_model_cfg)]
    for model in models:
        assert type(model).__name__ == 'ChineseCLIP' and not model.training
        assert model.cfg['image_encoder'] == tiny_model_cfg['image_encoder']
        assert model.tokenizer.vocab_file == tiny_model_cfg['tokenizer']['vocab_file']
    with pytest.raises(ValueError, match='needs a config, a checkpoint or both'):
        init_model()
    with pytest.raises(KeyError, match='no "type"'):
        init_model(dict(embed_dim=3))


def test_config_plus_official_checkpoint(tiny_model_cfg, tmp_path, vocab_file):
    source = init_model(tiny_model_cfg)
    state = mm_to_official(source.state_dict())  # with module. prefixes, as the official trainer saves
    path = tmp_path / 'epoch_latest.pt'
    torch.save(dict(epoch=1, step=1, name='x', state_dict=state), path)
    tiny_model_cfg['tokenizer'] = None
    model = init_model(tiny_model_cfg, str(path), device='cpu', vocab_file=vocab_file)
    assert model.tokenizer.vocab_file == vocab_file and model.tokenizer.context_length == 52
    assert model.text_projection.device == torch.device('cpu')
    ids = model.tokenizer(['你好，世界'])
    assert torch.equal(model.extract_text_feat(ids), source.eval().extract_text_feat(ids))

    wrong = dict(tiny_model_cfg, embed_dim=16, image_encoder=dict(tiny_model_cfg['image_encoder'], output_dim=16))
    with pytest.raises(CheckpointMismatchError, match=r'text_projection: checkpoint \(48, 32\) vs model \(48, 16\)'):
        init_model(wrong, str(path))
    loose = init_model(wrong, str(path), strict=False)  # logged, the matching part still loads
    assert torch.equal(loose.image_encoder.conv1.weight, source.image_encoder.conv1.weight)
