"""The shipped vocab is the default, and one top-level ``tokenizer`` key configures model and pipelines."""
import filecmp
import os
from pathlib import Path

import torch
from mmengine.config import Config

from cnclip_mm.models.tokenizer import SHIPPED_VOCAB, ChineseTokenizer
from cnclip_mm.registry import MODELS, TRANSFORMS
from cnclip_mm.utils import share_tokenizer

REPO = Path(__file__).resolve().parents[2]
LEAVES = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)


def _tokenizers(node, found):
    """Every tokenizer config in a config: the model's and each TokenizeText step's."""
    if isinstance(node, dict):
        if node.get('type') == 'ChineseTokenizer':
            found.append(node)
        for value in node.values():
            _tokenizers(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _tokenizers(value, found)
    return found


def test_shipped_vocab_is_the_official_one_and_the_default(vocab_file):
    assert Path(SHIPPED_VOCAB).is_relative_to(REPO / 'cnclip_mm')
    assert filecmp.cmp(SHIPPED_VOCAB, vocab_file, shallow=False)
    tok = ChineseTokenizer()
    assert tok.vocab_file == SHIPPED_VOCAB and tok.vocab_size == 21128
    text = '一只在草地上奔跑的狗 CLIP模型'
    assert tok(text).tolist() == ChineseTokenizer(vocab_file)(text).tolist()
    assert TRANSFORMS.build(dict(type='TokenizeText')).tokenizer.vocab_file == SHIPPED_VOCAB


def test_setup_ships_the_vocab_as_package_data(monkeypatch):
    from distutils.core import run_setup
    monkeypatch.chdir(REPO)
    build_py = run_setup('setup.py', stop_after='init').get_command_obj('build_py')
    build_py.ensure_finalized()
    shipped = {os.path.join(src, f) for _, src, _, files in build_py.data_files for f in files}
    assert os.path.relpath(SHIPPED_VOCAB, REPO) in shipped


def test_no_config_names_a_hub_vocab_and_every_model_and_pipeline_gets_one():
    assert len(LEAVES) > 30
    for path in LEAVES:
        cfg = share_tokenizer(Config.fromfile(str(path)).to_dict())
        found = _tokenizers(cfg, [])
        assert cfg['model']['tokenizer'] in found, path
        for tok in found:
            vocab = tok.get('vocab_file')
            assert vocab is None or vocab.endswith(('data/demo/vocab.txt', 'data/demo_classes/vocab.txt')), (path, vocab)


def test_one_cfg_option_changes_model_and_every_pipeline(tmp_path):
    cfg = Config.fromfile(str(REPO / 'configs' / 'stage1_vit-l-14-336.py'))
    (tmp_path / 'vocab.txt').write_text('x\n', encoding='utf-8')
    cfg.merge_from_dict({'tokenizer.vocab_file': str(tmp_path), 'tokenizer.context_length': 64})
    shared = share_tokenizer(cfg.to_dict())
    found = _tokenizers(shared, [])
    assert shared['model']['tokenizer'] in found
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert _tokenizers(shared[loader], [])
    assert all(t['vocab_file'] == str(tmp_path) and t['context_length'] == 64 for t in found)


def test_explicit_and_partial_tokenizers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'v.txt').write_text('x\n', encoding='utf-8')
    cfg = dict(tokenizer=dict(vocab_file='v.txt', context_length=52),
               model=dict(type='ChineseCLIP', tokenizer=dict(context_length=77)),
               test_dataloader=dict(dataset=dict(pipeline=[
                   dict(type='TokenizeText'),
                   dict(type='TokenizeText', tokenizer=dict(type='ChineseTokenizer', vocab_file='own'))])))
    share_tokenizer(cfg)
    absolute = str(tmp_path / 'v.txt')  # made absolute: a checkpoint's stored config works elsewhere
    assert cfg['model']['tokenizer'] == dict(type='ChineseTokenizer', vocab_file=absolute, context_length=77)
    steps = cfg['test_dataloader']['dataset']['pipeline']
    assert steps[0]['tokenizer']['vocab_file'] == absolute
    assert steps[1]['tokenizer'] == dict(type='ChineseTokenizer', vocab_file='own')
    tok = MODELS.build(dict(type='ChineseTokenizer'))
    assert tok.vocab_file == SHIPPED_VOCAB
    later = share_tokenizer(dict(tokenizer=dict(vocab_file='data/demo/vocab.txt'), model=dict()))
    assert later['model']['tokenizer']['vocab_file'] == str(tmp_path / 'data/demo/vocab.txt')  # written later
    hub = share_tokenizer(dict(tokenizer=dict(vocab_file='hfl/rbt3'), model=dict()))
    assert hub['model']['tokenizer']['vocab_file'] == 'hfl/rbt3'


def test_checkpoint_stores_an_absolute_vocab_path(tmp_path, monkeypatch):
    """A trained checkpoint's stored config names the vocab absolutely: it loads from any directory."""
    from tests.test_engine.conftest import tiny_runner_cfg, write_tiny_tsv
    from tools.train import main as train_main
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'd').mkdir()
    write_tiny_tsv(str(tmp_path / 'd'), 'train', 8, seed=0)
    (tmp_path / 'v').mkdir()
    (tmp_path / 'v' / 'vocab.txt').write_bytes(Path(SHIPPED_VOCAB).read_bytes())
    cfg = Config(tiny_runner_cfg(None, 'd', max_epochs=1, batch_size=8))
    cfg.tokenizer = dict(vocab_file='v/vocab.txt', context_length=52)
    cfg.model.pop('tokenizer')
    cfg.train_dataloader.dataset.pipeline[2].pop('tokenizer')
    cfg.pop('work_dir')
    cfg.dump(str(tmp_path / 'c.py'))
    train_main([str(tmp_path / 'c.py'), '--work-dir', 'work'])
    meta = torch.load(tmp_path / 'work' / 'epoch_1.pth', map_location='cpu', weights_only=True)['meta']
    stored = Config.fromstring(meta['cfg'], '.py')  # the test's own file
    absolute = str(tmp_path / 'v' / 'vocab.txt')
    assert stored.model.tokenizer.vocab_file == absolute
    assert stored.train_dataloader.dataset.pipeline[2].tokenizer.vocab_file == absolute
