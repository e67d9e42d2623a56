"""--strategy fsdp: 2-process gloo FSDP equals DDP on the same global batch, across the stage switch and a
SIGKILL + resume."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

import cnclip_mm.engine  # noqa: F401  (checkpoint allow-list for torch.load)
from tests.test_engine.conftest import dump_with_runtime, tiny_runner_cfg
from tests.test_tools.test_train import data_root  # noqa: F401  (fixture)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# tools/train.py whose ranks SIGKILL themselves once iteration KILL_AFTER's hooks (its checkpoint included)
# have run on every rank: the barrier keeps a rank from dying while rank 0 still writes.
KILL_DRIVER = r'''
import os, signal, sys
import torch.distributed as dist
from cnclip_mm.engine.runner import CLIPFlexibleRunner
from tools.train import main
kill_after = int(sys.argv[1])
call_hook = CLIPFlexibleRunner.call_hook
def killing_call_hook(self, fn_name, **kwargs):
    call_hook(self, fn_name, **kwargs)
    if fn_name == 'after_train_iter' and self.iter + 1 == kill_after:
        dist.barrier()
        os.kill(os.getpid(), signal.SIGKILL)
CLIPFlexibleRunner.call_hook = killing_call_hook
main(sys.argv[2:])
'''


def _config(tmp_path, data_root) -> str:  # noqa: F811
    """Tiny model, 16 samples, 2 ranks x 4 per batch: 2 iterations per epoch, 4 iterations; image tower
    unlocked at iteration 2; feature-cache accumulation (2 micro-batches); a checkpoint every iteration.
    Iteration-based, so that a resume from iteration 2 continues the same data order."""
    tiny = tiny_runner_cfg(None, data_root, max_epochs=2, batch_size=4, accum_freq=2,
                           custom_hooks=[dict(type='TowerLockHook', unlock_iter=2)])
    tiny['default_hooks']['checkpoint'] = dict(by_epoch=False, interval=1, max_keep_ckpts=-1, save_best=None)
    # SGD: weight differences stay proportional to gradient differences (float summation order
    # differs between DDP's all-reduce and FSDP's reduce-scatter; Adam's normalised step magnifies that).
    tiny['optim_wrapper']['optimizer'] = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0)
    tiny.update(train_cfg=dict(type='IterBasedTrainLoop', max_iters=4), log_processor=dict(by_epoch=False),
                param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)])
    return dump_with_runtime(tiny, str(tmp_path / 'tiny_cfg.py'))


def _torchrun(tmp_path, *args, options=(), script=None, expect_ok=True):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(port),
           script or osp.join(REPO, 'tools', 'train.py'), *args, '--launcher', 'pytorch', '--cfg-options', 'log_level=INFO', *options]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == expect_ok, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _state(work, it):
    return torch.load(osp.join(work, f'iter_{it}.pth'))['state_dict']


def _losses(work):
    losses = {}
    for path in glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')):
        for line in open(path):
            row = json.loads(line)
            if 'loss' in row:
                losses[row['iter']] = row['loss']
    return losses


def test_fsdp_matches_ddp_across_stage_switch_and_resume(tmp_path, data_root):  # noqa: F811
    cfg = _config(tmp_path, data_root)
    ddp, fsdp = str(tmp_path / 'ddp'), str(tmp_path / 'fsdp')
    _torchrun(tmp_path, cfg, '--work-dir', ddp)
    # FSDP: SIGKILL both ranks right after iteration 2's checkpoint, then resume in new processes.
    driver = tmp_path / 'kill_driver.py'
    driver.write_text(KILL_DRIVER)
    log = _torchrun(tmp_path, '2', cfg, '--work-dir', fsdp, '--strategy', 'fsdp', script=str(driver),
                    expect_ok=False)
    assert 'CLIPFullyShardedDataParallel' in log and 'feature-cache accumulation: 2 micro-batches' in log
    assert 'SIGKILL' in log or '-9' in log, log[-2000:]
    assert osp.exists(osp.join(fsdp, 'iter_2.pth')) and not osp.exists(osp.join(fsdp, 'iter_3.pth'))
    log = _torchrun(tmp_path, cfg, '--work-dir', fsdp, '--strategy', 'fsdp', '--resume')
    assert 'resumed epoch: 0, iter: 2' in log and 'image tower unlocked at epoch 0, iter 2' in log
    conv = 'image_encoder.conv1.weight'
    for it in (1, 2, 4):  # full (unsharded) state dicts in the usual layout
        want, got = _state(ddp, it), _state(fsdp, it)
        assert set(want) == set(got)
        diff = max((want[k] - got[k]).abs().max().item() for k in want)
        assert diff < 1e-5, (it, diff)
    assert torch.equal(_state(fsdp, 1)[conv], _state(fsdp, 2)[conv])  # locked in iterations 0, 1
    assert not torch.allclose(_state(fsdp, 2)[conv], _state(fsdp, 4)[conv])  # trains after the switch
    want, got = _losses(ddp), _losses(fsdp)
    assert sorted(want) == sorted(got) == [1, 2, 3, 4]
    assert all(abs(want[i] - got[i]) < 1e-5 for i in want), (want, got)
