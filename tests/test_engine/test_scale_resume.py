"""A resume at 90% of an epoch skips at the sampler: only the remaining samples are loaded (fetches counted), and
the run ends bit-identical to an uninterrupted one, in the main process and with persistent workers; samples are
augmented from their own seeds, so the worker count does not change the result either."""
import copy
import os
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from cnclip_mm.datasets.sample_seeds import SeededIndexSampler, SeededSamples, sample_seed
from cnclip_mm.engine import CLIPRunner
from cnclip_mm.engine.runner.exact_resume_loop import seeded_loader
from cnclip_mm.registry import TRANSFORMS
from tests.test_engine.conftest import tiny_runner_cfg, write_tiny_tsv

SAMPLES, BATCH, EPOCHS, RESUME_AT = 20, 2, 2, 9  # 10 iterations per epoch; resume after 9 of epoch 0's


@TRANSFORMS.register_module(force=True)
class CountFetches:
    """Appends one byte to ``path`` per sample loaded (from any process)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, results: dict) -> dict:
        with open(self.path, 'ab') as f:
            f.write(b'.')
        return results


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('resume_data'))
    write_tiny_tsv(root, 'train', SAMPLES, seed=0)
    return root


def _train(work: str, data_root: str, num_workers: int, load_from: str = None) -> tuple:
    """Train (or resume from ``load_from``) to the end; returns (final weights, samples loaded)."""
    os.makedirs(work, exist_ok=True)
    counter = osp.join(work, 'fetches')
    cfg = tiny_runner_cfg(work, data_root, max_epochs=EPOCHS, batch_size=BATCH,
                          custom_hooks=[dict(type='RNGStateHook')])
    pipeline = cfg['train_dataloader']['dataset']['pipeline']
    pipeline[1:2] = [dict(type='RandomResizedCrop', scale=32, crop_scale=(0.5, 1.0))]  # random augmentation
    pipeline.insert(0, dict(type='CountFetches', path=counter))
    cfg['train_dataloader'].update(num_workers=num_workers, persistent_workers=num_workers > 0)
    cfg['default_hooks']['checkpoint'] = dict(type='CLIPCheckpointHook', by_epoch=False, interval=RESUME_AT,
                                              max_keep_ckpts=-1)
    if load_from:
        cfg.update(resume=True, load_from=load_from)
    runner = CLIPRunner.from_cfg(Config(copy.deepcopy(cfg)))
    model = runner.train()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, osp.getsize(counter)


def _equal(a: dict, b: dict) -> list:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize('num_workers', [0, 2])
def test_resume_at_90_percent_loads_only_the_rest_and_is_bit_exact(tmp_path, data_root, num_workers):
    full, loaded = _train(str(tmp_path / 'full'), data_root, num_workers)
    assert loaded == EPOCHS * SAMPLES
    ckpt = str(tmp_path / 'full' / f'iter_{RESUME_AT}.pth')
    resumed, loaded = _train(str(tmp_path / 'resumed'), data_root, num_workers, load_from=ckpt)
    assert loaded == (10 - RESUME_AT) * BATCH + SAMPLES  # epoch 0's last batch, then all of epoch 1
    diff = _equal(full, resumed)
    assert not diff, f'{len(diff)} tensors differ, e.g. {diff[:3]}'
    if num_workers:  # the same numbers as loading in the main process (test case 0)
        main, _ = _train(str(tmp_path / 'main_process'), data_root, 0)
        diff = _equal(full, main)
        assert not diff, f'{len(diff)} tensors differ between 2 workers and none, e.g. {diff[:3]}'


def test_seeded_sampler_skips_and_seeds_each_sample():
    sampler = SeededIndexSampler([4, 2, 7, 1], seed=5)
    sampler.set_epoch(3)
    assert list(sampler) == [(i, sample_seed(5, 3, i)) for i in (4, 2, 7, 1)]
    sampler.skip(3)
    assert list(sampler) == [(1, sample_seed(5, 3, 1))]
    assert len(list(sampler)) == 4  # a skip applies to one pass
    assert len({sample_seed(5, e, i) for e in range(3) for i in range(50)}) == 150


class _Draws:
    """A dataset whose items are random draws from the three generators."""
    name = 'draws'

    def __getitem__(self, index):
        return index, random.random(), float(np.random.rand()), torch.rand(1).item()

    def __len__(self):
        return 3


def test_seeded_samples_fix_augmentation_and_restore_the_callers_rngs():
    draws = SeededSamples(_Draws())
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    first = draws[1, 11]
    assert first == draws[1, 11] and draws[1, 12] != first
    assert draws.__getitems__([(1, 11), (2, 12)]) == [first, draws[2, 12]]  # a batch: the same draws
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert (np.random.get_state()[1] == states[2]).all()
    assert len(draws) == 3 and draws.name == 'draws'  # the dataset's attributes read through


def test_seeded_loader_keeps_the_settings_and_refuses_a_custom_batch_sampler():
    loader = seeded_loader(DataLoader(_Draws(), batch_size=2, drop_last=True, collate_fn=list), seed=7)
    assert isinstance(loader.dataset, SeededSamples) and loader.batch_size == 2 and loader.drop_last
    ((first, second),) = list(loader)  # one full batch of 2 (the third sample dropped)
    assert (first, second) == (SeededSamples(_Draws())[0, sample_seed(7, 0, 0)],
                               SeededSamples(_Draws())[1, sample_seed(7, 0, 1)])
    custom = _Batches(BatchSampler(SequentialSampler(range(3)), batch_size=2, drop_last=False))
    with pytest.raises(TypeError, match='custom batch_sampler'):
        seeded_loader(DataLoader(_Draws(), batch_sampler=custom), seed=7)


class _Batches:
    """A batch sampler of another class than torch's BatchSampler."""

    def __init__(self, inner):
        self.inner = inner

    def __iter__(self):
        return iter(self.inner)

    def __len__(self):
        return len(self.inner)
