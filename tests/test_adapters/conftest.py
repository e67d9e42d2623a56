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
    image=dict(
        type='LoRA',
        target_modules=['attn.out_proj', 'mlp.c_fc', 'mlp.c_proj'],
        target_parameters=['attn.in_proj_weight'],
        r=4,
        alpha=8,
        dropout=0.0,
    ),
    text=dict(
        type='LoRA',
        target_modules=[
            'query',
            'key',
            'value',
            'attention.output.dense',
            'intermediate.dense',
            'output.dense',
        ],
        r=4,
        alpha=8,
        dropout=0.1,
    ),
)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model's kernels are too small to share between threads; on a busy machine a second thread
    only waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    torch.save(
        dict(epoch=1, step=1, name='tiny', state_dict=mm_to_official(model.state_dict())), path
    )
    return path, model.state_dict()


EPOCHS = 30


def lora_runner_cfg(work_dir: str, data_root: str, base: str) -> dict:
    """:func:`tiny_runner_cfg` fine-tuning ``base`` with :data:`LORA` and adapters-only checkpoints:
    :data:`EPOCHS` epochs of one step (all 16 pairs) at a constant lr, one thread."""
    cfg = tiny_runner_cfg(
        work_dir,
        data_root,
        max_epochs=EPOCHS,
        batch_size=16,
        custom_hooks=[dict(type='RNGStateHook'), dict(type='AdapterCheckpointHook')],
    )
    cfg['model']['adapters'] = copy.deepcopy(LORA)
    cfg['train_dataloader']['dataset']['serialize_data'] = (
        False  # its gc.collect costs seconds here
    )
    cfg['optim_wrapper']['optimizer']['lr'] = 5e-3
    cfg['param_scheduler'] = [dict(type='ConstantLR', factor=1.0)]
    # Every 10 epochs (each save formats the config text, slower than ten steps here), the last two kept.
    cfg['default_hooks']['checkpoint'].update(interval=10, max_keep_ckpts=2)
    cfg['env_cfg']['num_threads'] = 1
    cfg['load_from'] = base
    return cfg


@pytest.fixture(scope='session')
def lora_run(lora_data, base_official, tmp_path_factory):
    """A LoRA fine-tune of the official-format base: ``(work_dir, cfg)``; ``epoch_20.pth``, ``epoch_30.pth``."""
    from cnclip_mm.engine import CLIPRunner

    work = str(tmp_path_factory.mktemp('lora_run'))
    cfg = lora_runner_cfg(work, lora_data, base_official[0])
    CLIPRunner.from_cfg(Config(copy.deepcopy(cfg))).train()
    return work, cfg
