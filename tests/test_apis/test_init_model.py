"""init_model: config as path / Config / dict, with or without a checkpoint, tokenizer selection."""
import pytest
import torch
from mmengine.config import Config

from cnclip_mm.models.builder import init_model
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


def test_stage1_checkpoint_loads_without_its_pretrained_bert(tiny_model_cfg, tmp_path):
    # A stage-1 run's stored config names the BERT it started from (often a hub name, or a folder
    # gone since): loading the checkpoint must not need it, the weights come from the checkpoint.
    source = init_model(tiny_model_cfg)
    stored = dict(tiny_model_cfg, text_encoder=dict(tiny_model_cfg['text_encoder'],
                                                    pretrained=str(tmp_path / 'bert_folder_gone')))
    meta = dict(cfg=Config(dict(model=stored)).pretty_text)
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=source.state_dict(), meta=meta), path)
    model = init_model(checkpoint=str(path))
    assert model.cfg['text_encoder']['pretrained'] is None
    assert model.text_encoder.config.num_attention_heads == 2  # the config's custom arch is kept
    ids = model.tokenizer(['你好'])
    assert torch.equal(model.extract_text_feat(ids), source.eval().extract_text_feat(ids))


def test_stage1_preset_arch_comes_from_the_shapes(tmp_path):
    from cnclip_mm.models.builder import _drop_pretrained_sources
    cfg = dict(text_encoder=dict(type='ChineseBertEncoder', arch='base', pretrained='hfl/rbt3'))
    state = {'text_projection': torch.zeros(768, 8), 'image_encoder.proj': torch.zeros(16, 8),
             'image_encoder.conv1.weight': torch.zeros(16, 3, 8, 8),
             'image_encoder.positional_embedding': torch.zeros(17, 16),
             'text_encoder.bert.embeddings.word_embeddings.weight': torch.zeros(21128, 768),
             'text_encoder.bert.embeddings.position_embeddings.weight': torch.zeros(512, 768)}
    for i in range(3):
        state[f'text_encoder.bert.encoder.layer.{i}.intermediate.dense.weight'] = torch.zeros(3072, 768)
        state[f'image_encoder.transformer.resblocks.{i}.attn.in_proj_weight'] = torch.zeros(48, 16)
    _drop_pretrained_sources(cfg, state, 'mm', {})
    assert cfg['text_encoder']['arch'] == 'rbt3' and cfg['text_encoder']['pretrained'] is None
