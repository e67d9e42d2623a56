"""--compile: the towers compile in place, recompile at the stage switch, evaluate, and match eager."""
import os.path as osp

import torch

from tests.test_engine.conftest import dump_with_runtime, tiny_runner_cfg
from tests.test_tools.test_train import data_root  # noqa: F401  (fixture)
from tools.train import main

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _config(tmp_path, data_root) -> str:  # noqa: F811
    """The tiny model, 1 epoch of 4 iterations, image tower unlocked at iteration 2, validation."""
    tiny = tiny_runner_cfg(None, data_root, max_epochs=1, batch_size=4, val=True,
                           custom_hooks=[dict(type='TowerLockHook', unlock_iter=2)])
    # SGD: weight differences stay proportional to gradient differences (Adam's normalised step
    # would turn a rounding-level difference of a near-zero gradient into a full lr-sized one).
    tiny['optim_wrapper']['optimizer'] = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0)
    tiny['default_hooks']['checkpoint'] = dict(by_epoch=False, interval=1, max_keep_ckpts=-1)
    # Compiled code runs PyTorch's own ops (cpu_speed's paths stand aside under compile), so the eager run
    # does too: its dropout masks would otherwise come from cpu_speed's sampler.
    tiny['cpu_speed'] = False
    return dump_with_runtime(tiny, str(tmp_path / 'tiny_cfg.py'))


def _state(work, it):
    return torch.load(osp.join(work, f'iter_{it}.pth'))['state_dict']


def test_compile_matches_eager_across_stage_switch(tmp_path, data_root, backend='aot_eager'):  # noqa: F811
    """The aot_eager backend (dynamo + AOTAutograd, no code generation) keeps the test short: inductor
    takes minutes to build this model on 2 loaded cores and draws dropout masks from its own RNG."""
    cfg = _config(tmp_path, data_root)
    eager, compiled = str(tmp_path / 'eager'), str(tmp_path / 'compiled')
    main([cfg, '--work-dir', eager])
    flag = ['--compile'] + ([backend] if backend else [])
    runner = main([cfg, '--work-dir', compiled] + flag)
    model = runner.model
    assert model._towers_compiled and model.image_encoder._compiled_call_impl is not None
    assert runner.cfg.compile == (dict(backend=backend) if backend else True)
    assert runner.message_hub.get_scalar('val/retrieval/mean_recall') is not None  # evaluated compiled
    # Stage switch: the image tower is frozen for iterations 0 and 1 and trains from iteration 2 on.
    conv = 'image_encoder.conv1.weight'
    assert torch.equal(_state(compiled, 1)[conv], _state(compiled, 2)[conv])
    assert not torch.equal(_state(compiled, 2)[conv], _state(compiled, 4)[conv])
    want, got = _state(eager, 4), _state(compiled, 4)
    assert set(want) == set(got)  # in-place compile: no _orig_mod. prefixes in checkpoints
    diff = max((want[k].float() - got[k].float()).abs().max().item() for k in want)
    assert diff < 1e-4, diff
