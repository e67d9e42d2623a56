"""Fixtures of the adapter tests: the tiny model's LoRA block, tiny data, a base checkpoint in the official
format and one finished LoRA run with adapters-only checkpoints."""
import copy

import pytest
import torch
from mmengine.config import Config

from tests.conftest import TINY_MODEL
from tests.test_engine.conftest import tiny_runner_cfg, write_tiny_tsv

# Every kind of target: the ViT's Linears, its packed q/k/v parameter (peft's target_parameters, which
# takes no dropout), and every Linear of the BERT layers.
LORA = dict(
    image=dict(type='LoRA', target_modules=['attn.out_proj', 'mlp.c_fc', 'mlp.c_proj'],
               target_parameters=['attn.in_proj_weight'], r=4, alpha=8, dropout=0.0),
    text=dict(type='LoRA', target_modules=['query', 'key', 'value', 'attention.output.dense',
                                           'intermediate.dense', 'output.dense'], r=4, alpha=8, dropout=0.1),
)


def lora_model_cfg(**adapters) -> dict:
    cfg = copy.deepcopy(TINY_MODEL)
    cfg['adapters'] = copy.deepcopy(adapters or LORA)
    return cfg


@pytest.fixture(scope='session')
def lora_data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('lora_tsv'))
    write_tiny_tsv(root, 'train', 16, seed=0)
    write_tiny_tsv(root, 'test', 16, seed=1)
    return root


@pytest.fixture(scope='session')
def base_official(tmp_path_factory, vocab_file):
    """The tiny model's random weights as an official ``.pt`` (``module.visual.*`` / ``module.bert.*``)."""
    from cnclip_mm.models.converters import mm_to_official
    from cnclip_mm.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(TINY_MODEL))
    path = str(tmp_path_factory.mktemp('base') / 'epoch_latest.pt')
    torch.save(dict(epoch=1, step=1, name='tiny', state_dict=mm_to_official(model.state_dict())), path)
    return path, model.state_dict()


def lora_runner_cfg(work_dir: str, data_root: str, base: str, max_epochs: int = 2, **kwargs) -> dict:
    """:func:`tiny_runner_cfg` fine-tuning ``base`` with :data:`LORA` and adapters-only checkpoints."""
    cfg = tiny_runner_cfg(work_dir, data_root, max_epochs=max_epochs,
                          custom_hooks=[dict(type='RNGStateHook'), dict(type='AdapterCheckpointHook')], **kwargs)
    cfg['model']['adapters'] = copy.deepcopy(LORA)
    cfg['load_from'] = base
    return cfg


@pytest.fixture(scope='session')
def lora_run(lora_data, base_official, tmp_path_factory):
    """Two epochs of LoRA from the official-format base: ``(work_dir, cfg)``."""
    from cnclip_mm.engine import CLIPRunner
    work = str(tmp_path_factory.mktemp('lora_run'))
    cfg = lora_runner_cfg(work, lora_data, base_official[0])
    CLIPRunner.from_cfg(Config(copy.deepcopy(cfg))).train()
    return work, cfg
