"""A LoRA run under the Runner: adapters-only checkpoints (small, completed from the base on load), exact
resume from one, and better held-out retrieval than the base it started from."""

import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from cnclip_mm.engine import CLIPRunner
from cnclip_mm.evaluation.metrics.retrieval import RetrievalRecall
from cnclip_mm.models.adapters import is_adapter_key
from cnclip_mm.models.builder import init_model
from cnclip_mm.registry import DATASETS, MODELS
from tests.conftest import TINY_MODEL
from tests.test_adapters.conftest import EPOCHS


@pytest.fixture(scope='module')
def finetuned(lora_run):
    """The last checkpoint through ``init_model``: the config stored in its meta, the base its meta names."""
    return init_model(checkpoint=osp.join(lora_run[0], f'epoch_{EPOCHS}.pth'))


def test_checkpoints_hold_the_adapters_alone_and_load_onto_their_base(
    lora_run, base_official, finetuned, tmp_path
):
    work, _ = lora_run
    base_path, base_state = base_official
    path = osp.join(work, f'epoch_{EPOCHS}.pth')
    ckpt = torch.load(path, weights_only=True)
    assert ckpt['meta']['adapters_only'] and ckpt['meta']['adapter_base'] == osp.abspath(base_path)
    assert ckpt['state_dict'] and all(is_adapter_key(k) for k in ckpt['state_dict'])
    full = str(tmp_path / 'full.pth')
    torch.save(dict(state_dict=base_state), full)
    assert os.path.getsize(path) * 10 < os.path.getsize(full)  # optimizer and loop state included

    state = finetuned.state_dict()
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(state[key], value), key
    for key, value in base_state.items():
        assert torch.equal(state[key], value), key  # the base never moved


def test_resume_from_an_adapters_only_checkpoint_is_exact(lora_run, tmp_path):
    work, cfg = lora_run
    cfg = copy.deepcopy(cfg)
    cfg.update(
        work_dir=str(tmp_path), resume=True, load_from=osp.join(work, f'epoch_{EPOCHS - 10}.pth')
    )
    CLIPRunner.from_cfg(Config(cfg)).train()
    resumed = torch.load(tmp_path / f'epoch_{EPOCHS}.pth', weights_only=True)
    straight = torch.load(osp.join(work, f'epoch_{EPOCHS}.pth'), weights_only=True)
    assert (
        resumed['meta']['adapter_base'] == straight['meta']['adapter_base']
    )  # carried over the resume
    assert resumed['state_dict'].keys() == straight['state_dict'].keys()
    for key, value in straight['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key


def _mean_recall(model, data_root: str) -> float:
    pipeline = [
        dict(type='LoadImage'),
        dict(type='ResizeExact', scale=32),
        dict(type='TokenizeText', tokenizer=TINY_MODEL['tokenizer']),
        dict(type='PackCLIPInputs'),
    ]
    dataset = DATASETS.build(
        dict(
            type='ImageTextTSVDataset',
            data_root=data_root,
            split='test',
            pipeline=pipeline,
            serialize_data=False,
        )
    )
    batch = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(len(dataset))]))
    with torch.no_grad():
        image_feats, text_feats = model.eval()(**batch, mode='tensor')
    ids = list(range(len(dataset)))
    return RetrievalRecall.calculate(image_feats, text_feats, ids, [[i] for i in ids])[
        'mean_recall'
    ]


def test_lora_fine_tune_improves_held_out_retrieval(finetuned, lora_data, base_official):
    base = MODELS.build(copy.deepcopy(TINY_MODEL))
    base.load_state_dict(base_official[1])
    before, after = _mean_recall(base, lora_data), _mean_recall(finetuned, lora_data)
    assert after > before + 10, (before, after)  # 26.0 -> 43.8 (chance: about 26)
