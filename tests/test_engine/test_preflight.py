"""First run: every missing input in one message before anything is built; clear errors after that."""
import os.path as osp
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.engine.preflight import PreflightError, check_inputs
from cnclip_mm.models.architecture import describe
from cnclip_mm.models.chinese_clip import ChineseCLIP
from tests.test_engine.conftest import tiny_runner_cfg, write_tiny_tsv
from tools.train import main as train_main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import load_tool, tiny_test_config, write_cifar100  # noqa: E402

test_tool = load_tool('test.py')


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """No hub and an empty Hugging Face cache."""
    import huggingface_hub.constants as hf_constants
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path / 'hf_cache'))


@pytest.fixture
def no_model_build(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('a model was built before the inputs were checked')
    monkeypatch.setattr(ChineseCLIP, '__init__', refuse)


def test_stage1_in_an_empty_dir_lists_every_missing_input_at_once(tmp_path, monkeypatch, no_hub, no_model_build):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PreflightError) as info:
        train_main([str(REPO / 'configs' / 'stage1_vit-b.py')])
    message = str(info.value)
    assert message.startswith('4 input(s) of ') and 'stage1_vit-b.py are missing' in message
    for expected in ('train data (ImageTextTSVDataset', 'data/muge/train_imgs.tsv', 'data/muge/train_texts.jsonl',
                     'val data (ImageTextTSVDataset', 'data/muge/valid_imgs.tsv',
                     'pretrained image tower (model.image_encoder.init_cfg', 'pretrained/ViT-B-16.pt',
                     'image_encoder.init_cfg=None to start',
                     "pretrained text tower (model.text_encoder.pretrained): 'hfl/chinese-roberta-wwm-ext' is "
                     'neither a local folder nor in the Hugging Face cache, and the hub is offline',
                     'Chinese-CLIP README'):
        assert expected in message, expected
    assert not (tmp_path / 'work_dirs').exists()  # nothing was started


def test_test_tool_lists_data_checkpoint_and_vocab(tmp_path, no_hub, no_model_build):
    cfg = str(REPO / 'configs' / 'zeroshot_cifar100.py')
    with pytest.raises(PreflightError) as info:
        test_tool.main([cfg, str(tmp_path / 'clip_cn_vit-b-16.pt'), '--cfg-options',
                        f'test_dataloader.dataset.data_root={tmp_path / "cifar"}',
                        f'tokenizer.vocab_file={tmp_path / "vocab.txt"}', '--work-dir', str(tmp_path / 'w')])
    message = str(info.value)
    assert message.startswith('3 input(s)')
    assert 'cifar-100-python.tar.gz' in message and str(tmp_path / 'cifar') in message
    assert f'{tmp_path / "clip_cn_vit-b-16.pt"}' in message and 'docs/evaluation.md#reproducing-the-published-numbers' in message
    assert f'tokenizer vocabulary (tokenizer.vocab_file): {tmp_path / "vocab.txt"} (no such file' in message


def test_hub_names_pass_when_cached_or_online(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path / 'hf_cache'))
    cfg = dict(model=dict(text_encoder=dict(pretrained='hfl/rbt3')), tokenizer=dict(vocab_file='hfl/rbt3'))
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    monkeypatch.delenv('TRANSFORMERS_OFFLINE', raising=False)
    check_inputs(dict(cfg), 'train')  # online: the hub may serve them
    snapshot = tmp_path / 'hf_cache' / 'models--hfl--rbt3' / 'snapshots' / 'abc'
    snapshot.mkdir(parents=True)
    for name in ('config.json', 'vocab.txt'):
        (snapshot / name).write_text('{}', encoding='utf-8')
    (tmp_path / 'hf_cache' / 'models--hfl--rbt3' / 'refs').mkdir()
    (tmp_path / 'hf_cache' / 'models--hfl--rbt3' / 'refs' / 'main').write_text('abc')
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    check_inputs(dict(cfg), 'train')  # offline but cached


def test_stage2_names_the_missing_stage1_checkpoint(tmp_path, monkeypatch, no_hub, no_model_build):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PreflightError, match=r'load_from\): work_dirs/stage1_vit-b/last_checkpoint\n'
                                             r'     -> train the previous stage first'):
        train_main([str(REPO / 'configs' / 'stage2_vit-b.py')])


def test_architecture_mismatch_names_both(tmp_path, vocab_file):
    write_cifar100(str(tmp_path / 'cifar100'), [1, 2, 3, 4], seed=3)
    cfg = tiny_test_config(tmp_path, 'zeroshot_cifar100.py', str(tmp_path / 'cifar100'), vocab_file, retrieval=False)
    other = Config.fromfile(cfg).model.to_dict()
    other['image_encoder']['arch'] = dict(width=64, layers=1, heads=2, patch_size=16)
    other['tokenizer'] = dict(vocab_file=vocab_file)
    torch.save(dict(state_dict=ChineseCLIP(**{k: v for k, v in other.items() if k != 'type'}).state_dict()),
               tmp_path / 'other.pth')
    with pytest.raises(ValueError) as info:
        test_tool.main([cfg, str(tmp_path / 'other.pth'), '--work-dir', str(tmp_path / 'w')])
    message = str(info.value)
    assert 'other.pth is a CLIPVisionTransformer width=64, layers=1, patch_size=16 at 64px' in message
    assert 'the config builds a CLIPVisionTransformer width=128, layers=3, patch_size=8 at 64px' in message


def test_describe_names_presets():
    b16 = Config.fromfile(str(REPO / 'configs' / '_base_' / 'models' / 'vit-b-16.py')).model
    rn50 = Config.fromfile(str(REPO / 'configs' / '_base_' / 'models' / 'rn50.py')).model
    assert describe(b16)[0] == 'CLIPVisionTransformer b-16 at 224px + text tower base, embed_dim 512'
    assert describe(rn50)[0] == 'ModifiedResNet rn50 at 224px + text tower rbt3, embed_dim 1024'


def test_dataset_smaller_than_one_batch_names_both_numbers(tmp_path):
    root = str(tmp_path / 'data')
    (tmp_path / 'data').mkdir()
    write_tiny_tsv(root, 'train', 6, seed=0)
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'default_runtime.py'))
    tiny = tiny_runner_cfg(None, root, max_epochs=1, batch_size=8)
    tiny.pop('work_dir')
    tiny['train_dataloader']['drop_last'] = True
    cfg.merge_from_dict(tiny)
    cfg.dump(str(tmp_path / 'small.py'))
    with pytest.raises(ValueError, match=r'the training set has 6 items \(6 per process with 1 process\(es\)\), '
                                         r'fewer than one batch of train_dataloader.batch_size=8 with drop_last=True'):
        train_main([str(tmp_path / 'small.py'), '--work-dir', str(tmp_path / 'work'), '--no-validate'])


def test_generated_demo_data_and_vocab_are_not_missing(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'stage1.py'))
    check_inputs(cfg, 'train')  # data/demo (and its vocab.txt) are written on first use
    assert not (tmp_path / 'data').exists()
