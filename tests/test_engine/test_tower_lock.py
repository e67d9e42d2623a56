"""TowerLockHook: stage-1 locking, unlock by epoch / iteration, resume replay, 2-process DDP."""
import os
import socket
import tempfile
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.hooks import Hook

from cnclip_mm.engine import CLIPRunner, TowerLockHook, teardown_distributed, unwrap_model
from cnclip_mm.registry import MODELS
from tests.test_engine.conftest import RN_IMAGE_ENCODER, tiny_runner_cfg


class Snapshots(Hook):
    """Copies of the image tower / text tower state at the start and after each epoch or iter."""

    priority = 'LOWEST'

    def __init__(self, per_iter: bool = False):
        self.per_iter = per_iter
        self.states = []
        self.wrappers = []  # references kept, so ids stay unique

    def _take(self, runner):
        self.wrappers.append(runner.model)
        model = unwrap_model(runner.model)
        self.states.append(dict(
            image={k: v.detach().clone() for k, v in model.image_encoder.state_dict().items()},
            text={k: v.detach().clone() for k, v in model.text_encoder.state_dict().items()},
            wrapper=len({id(w) for w in self.wrappers})))

    def before_train(self, runner):
        self._take(runner)

    def after_train_epoch(self, runner):
        if not self.per_iter:
            self._take(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.per_iter:
            self._take(runner)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def _all_changed_params(a: dict, b: dict, model_part) -> bool:
    names = [n for n, _ in model_part.named_parameters()]
    return all(not torch.equal(a[n], b[n]) for n in names)


def _train(cfg: dict, per_iter: bool = False):
    runner = CLIPRunner.from_cfg(Config(cfg))
    snaps = Snapshots(per_iter)
    runner.register_hook(snaps)
    runner.train()
    return runner, snaps.states


def test_stage1_locks_image_tower_and_bn(tmp_path, tiny_data):
    hook = dict(type='TowerLockHook')
    runner, states = _train(tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=2, custom_hooks=[hook],
                                            image_encoder=RN_IMAGE_ENCODER))
    model = unwrap_model(runner.model)
    start, end = states[0], states[-1]
    assert _same(start['image'], end['image'])  # weights and BN running stats bit-identical
    assert any('running_mean' in k for k in start['image'])
    assert not _same(start['text'], end['text'])
    assert model.image_tower_locked and not model.text_tower_locked
    # Every parameter, frozen ones included, is in the optimizer.
    in_optim = {id(p) for g in runner.optim_wrapper.optimizer.param_groups for p in g['params']}
    assert in_optim == {id(p) for p in model.parameters()}


def test_unlock_at_epoch(tmp_path, tiny_data):
    hook = dict(type='TowerLockHook', unlock_epoch=1)
    runner, states = _train(tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=2, custom_hooks=[hook],
                                            image_encoder=RN_IMAGE_ENCODER))
    model = unwrap_model(runner.model)
    start, after_stage1, after_stage2 = states
    assert _same(start['image'], after_stage1['image'])
    assert not _same(start['text'], after_stage1['text'])
    assert _all_changed_params(after_stage1['image'], after_stage2['image'], model.image_encoder)
    bn = 'bn1.running_mean'
    assert not torch.equal(after_stage1['image'][bn], after_stage2['image'][bn])
    assert not _same(after_stage1['text'], after_stage2['text'])
    assert not model.image_tower_locked


def test_unlock_at_iter_partial_and_text_lock(tmp_path, tiny_data):
    # 16 samples / batch 8 = 2 iterations per epoch; stage 2 starts at iteration 3.
    hook = dict(type='TowerLockHook', unlock_iter=3, image_unlocked_groups=1, lock_text=True,
                text_unlocked_layers=1)
    runner, states = _train(tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=2, custom_hooks=[hook]),
                            per_iter=True)
    model = unwrap_model(runner.model)
    start = states[0]
    after3 = states[3]  # after iterations 0, 1, 2 (stage 1)
    last_block = 'transformer.resblocks.1.'
    for k, v in start['image'].items():
        if k.startswith(last_block) or k in ('ln_post.weight', 'ln_post.bias', 'proj'):
            continue
        assert torch.equal(v, after3['image'][k]), k
    assert not torch.equal(start['image']['proj'], after3['image']['proj'])  # unlocked group trains
    emb = 'bert.embeddings.word_embeddings.weight'
    assert torch.equal(start['text'][emb], after3['text'][emb])
    assert not torch.equal(start['text']['bert.encoder.layer.1.output.dense.weight'],
                           after3['text']['bert.encoder.layer.1.output.dense.weight'])
    final = states[-1]
    assert not torch.equal(after3['image']['conv1.weight'], final['image']['conv1.weight'])
    assert not torch.equal(after3['text'][emb], final['text'][emb])
    assert not model.image_tower_locked and not model.text_tower_locked


def test_replays_stage_on_resume(tiny_model_cfg):
    model = MODELS.build(tiny_model_cfg)
    hook = TowerLockHook(unlock_epoch=2)
    hook.before_train(SimpleNamespace(model=model, epoch=3, iter=30))
    assert not model.image_tower_locked
    hook.before_train(SimpleNamespace(model=model, epoch=1, iter=10))
    assert model.image_tower_locked
    with pytest.raises(ValueError, match='not both'):
        TowerLockHook(unlock_epoch=1, unlock_iter=5)


def _ddp_worker(rank, port, work_dir, data_root, out_dir, find_unused):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE='2')
    torch.set_num_threads(1)
    cfg = tiny_runner_cfg(work_dir, data_root, max_epochs=2, batch_size=4,
                          custom_hooks=[dict(type='TowerLockHook', unlock_epoch=1)],
                          image_encoder=RN_IMAGE_ENCODER)
    cfg['launcher'] = 'pytorch'
    cfg['model_wrapper_cfg']['find_unused_parameters'] = find_unused
    runner, states = _train(cfg)
    params = {k: v.detach().clone() for k, v in unwrap_model(runner.model).state_dict().items()}
    torch.save(dict(states=states, final=params, wrapper=type(runner.model).__name__),
               os.path.join(out_dir, f'rank{rank}.pt'))
    for hook in runner.hooks:
        if isinstance(hook, Snapshots):
            hook.wrappers.clear()
    teardown_distributed(runner)


@pytest.mark.parametrize('find_unused', [False, True])
def test_ddp_two_processes_lock_then_unlock(tiny_data, find_unused):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as out:
        mp.spawn(_ddp_worker, args=(port, work, tiny_data, out, find_unused), nprocs=2, join=True)
        res = [torch.load(os.path.join(out, f'rank{r}.pt'), weights_only=False) for r in range(2)]
    assert res[0]['wrapper'] == 'CLIPDistributedDataParallel'
    start, after1, after2 = res[0]['states']
    assert _same(start['image'], after1['image'])  # locked in stage 1 under DDP
    assert not _same(start['text'], after1['text'])
    assert not torch.equal(after1['image']['conv1.weight'], after2['image']['conv1.weight'])
    # The wrapper was rebuilt at the unlock (unless it finds unused parameters by itself) and the
    # ranks stayed in sync.
    assert [s['wrapper'] for s in (start, after1, after2)] == ([1, 1, 1] if find_unused else [1, 1, 2])
    for k, v in res[0]['final'].items():
        if 'running_' in k or 'num_batches' in k:
            continue  # BN stats are per rank (broadcast_buffers=False)
        assert torch.equal(v, res[1]['final'][k]), k
