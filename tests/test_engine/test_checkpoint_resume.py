"""Checkpoints load with weights_only=True; CLIPRunner reset options; RNG state round trip."""
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config

from cnclip_mm.engine import CLIPRunner, RNGStateHook
from cnclip_mm.engine.checkpoint_safety import mmengine_checkpoint_types
from tests.test_engine.conftest import tiny_runner_cfg


def test_checkpoint_loads_with_weights_only(trained):
    work, _ = trained
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=True)
    assert {'state_dict', 'optimizer', 'message_hub', 'meta', 'rng_state'} <= set(ckpt)
    assert 'getattr' not in {getattr(t, '__name__', '') for t in mmengine_checkpoint_types()}


def test_foreign_pickles_still_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': random.Random(0)}, path)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path)


@pytest.mark.parametrize('reset', [None, 'reset_optimizer', 'reset_data_offset'])
def test_resume_and_reset_options(trained, tiny_data, tmp_path, reset):
    work, _ = trained
    cfg = tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=1)
    cfg.update(resume=True, load_from=osp.join(work, 'epoch_1.pth'))
    if reset:
        cfg[reset] = True
    runner = CLIPRunner.from_cfg(Config(cfg))
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)
    fresh_lrs = [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]  # warm-up start
    runner.load_or_resume()
    state = runner.optim_wrapper.optimizer.state
    assert runner.train_loop.epoch == (0 if reset == 'reset_data_offset' else 1)
    assert (len(state) == 0) == (reset == 'reset_optimizer')
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'))
    torch.testing.assert_close(runner.model.state_dict()['logit_scale'], ckpt['state_dict']['logit_scale'])
    # The lr must agree with the schedules: the run's own lr when they are restored, the fresh
    # warm-up start when the data offset is reset (never a rescaled or re-scheduled mix).
    lrs = [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]
    saved = [g['lr'] for g in ckpt['optimizer']['param_groups']]
    assert lrs == (fresh_lrs if reset == 'reset_data_offset' else saved)
    assert fresh_lrs != saved
    if reset == 'reset_data_offset':
        assert all(s.last_step == 0 for s in runner.param_schedulers)
    else:
        assert all(s.last_step > 0 for s in runner.param_schedulers)


def test_rng_state_round_trip():
    hook = RNGStateHook()
    ckpt = {}
    hook.before_save_checkpoint(None, ckpt)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    hook.after_load_checkpoint(None, ckpt)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_load_from_a_foreign_checkpoint_is_converted_and_strict(trained, tiny_data, tmp_path):
    from cnclip_mm.models.converters import CheckpointMismatchError, mm_to_official
    work, _ = trained
    weights = torch.load(osp.join(work, 'epoch_1.pth'))['state_dict']
    official = str(tmp_path / 'epoch_latest.pt')  # official layout, module. prefixes
    torch.save(dict(epoch=1, step=1, name='x', state_dict=mm_to_official(weights)), official)

    def runner_for(load_from, resume=False):
        cfg = tiny_runner_cfg(str(tmp_path / f'run{resume}'), tiny_data, max_epochs=1)
        cfg.update(load_from=load_from, resume=resume)
        runner = CLIPRunner.from_cfg(Config(cfg))
        runner._train_loop = runner.build_train_loop(runner._train_loop)
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)
        return runner

    runner = runner_for(official)
    runner.load_or_resume()
    for key, value in runner.model.state_dict().items():
        torch.testing.assert_close(value, weights[key], msg=key)
    with pytest.raises(ValueError, match='cannot resume from .*official-format'):
        runner_for(official, resume=True).load_or_resume()
    truncated = mm_to_official({k: v for k, v in weights.items() if 'ln_post' not in k})
    torch.save(dict(state_dict=truncated), official)
    with pytest.raises(CheckpointMismatchError, match='ln_post'):
        runner_for(official).load_or_resume()
