"""tools/train.py end to end: main([...]), --resume auto across the stage switch, torchrun on CPU."""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from tests.test_engine.conftest import dump_with_runtime, tiny_runner_cfg, write_tiny_tsv
from tools.train import main

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('train_tsv'))
    write_tiny_tsv(root, 'train', 16, seed=0)
    write_tiny_tsv(root, 'test', 8, seed=1)
    return root


def _config(tmp_path, data_root, unlock_epoch=1, max_epochs=3) -> str:
    """The repo's default_runtime + a tiny model/data/schedule, as a config file."""
    tiny = tiny_runner_cfg(None, data_root, max_epochs=max_epochs, val=True,
                           custom_hooks=[dict(type='TowerLockHook', unlock_epoch=unlock_epoch)])
    tiny['default_hooks']['checkpoint'] = dict(by_epoch=True, interval=1)
    return dump_with_runtime(tiny, str(tmp_path / 'tiny_cfg.py'))


def _weights(work_dir, name):
    return torch.load(osp.join(work_dir, name))['state_dict']


def test_main_end_to_end(tmp_path, data_root):
    cfg = _config(tmp_path, data_root, max_epochs=2)
    work = str(tmp_path / 'work')
    runner = main([cfg, '--work-dir', work, '--amp', '--tensorboard',
                   '--cfg-options', 'train_dataloader.batch_size=4', 'optim_wrapper.clip_grad.max_norm=1.0',
                   'optim_wrapper.bf16_gemm=fp32'])
    assert type(runner).__name__ == 'CLIPRunner'
    assert runner.optim_wrapper.clip_grad_kwargs == dict(max_norm=1.0)
    assert type(runner.optim_wrapper).__name__ == 'AutocastOptimWrapper' and runner.optim_wrapper.bf16_gemm == 'fp32'
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    assert glob.glob(osp.join(work, 'best_retrieval_mean_recall_epoch_*.pth'))
    assert glob.glob(osp.join(work, '*', 'vis_data', 'events.out.tfevents.*'))
    scalars = open(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))[0]).read()
    assert 'retrieval/mean_recall' in scalars and '"loss"' in scalars
    assert runner.train_loop.iter == 8  # 16 samples / 4 per batch x 2 epochs


def test_no_validate_and_grad_checkpointing(tmp_path, data_root):
    cfg = _config(tmp_path, data_root, max_epochs=1)
    runner = main([cfg, '--work-dir', str(tmp_path / 'w'), '--no-validate', '--grad-checkpointing', '--threads', '1'])
    assert runner._val_loop is None
    assert runner.cfg.env_cfg.num_threads == 1  # what cpu_speed applies inside train()
    assert runner.model.image_encoder.grad_checkpointing
    assert not glob.glob(str(tmp_path / 'w' / 'best_*.pth'))


def test_resume_auto_matches_uninterrupted_run_across_stage_switch(tmp_path, data_root):
    cfg = _config(tmp_path, data_root, unlock_epoch=1, max_epochs=3)
    full, split = str(tmp_path / 'full'), str(tmp_path / 'split')
    main([cfg, '--work-dir', full, '--no-validate'])
    # Stop after epoch 1 (still stage 1; the schedule is fixed to 3 epochs), then resume to 3.
    main([cfg, '--work-dir', split, '--no-validate', '--cfg-options', 'train_cfg.max_epochs=1'])
    runner = main([cfg, '--work-dir', split, '--no-validate', '--resume'])
    assert not runner.model.image_tower_locked
    want, got = _weights(full, 'epoch_3.pth'), _weights(split, 'epoch_3.pth')
    stage1 = _weights(split, 'epoch_1.pth')
    assert not torch.equal(stage1['image_encoder.conv1.weight'], got['image_encoder.conv1.weight'])
    for k in want:
        assert torch.equal(want[k], got[k]), k


def test_resume_auto_without_checkpoint_starts_from_load_from(tmp_path, data_root):
    cfg = _config(tmp_path, data_root, max_epochs=1)
    first = str(tmp_path / 'stage1')
    main([cfg, '--work-dir', first, '--no-validate'])
    stage1 = osp.join(first, 'epoch_1.pth')
    second = str(tmp_path / 'stage2')
    runner = main([cfg, '--work-dir', second, '--no-validate', '--resume', '--load-from', stage1,
                   '--cfg-options', 'custom_hooks.0.unlock_epoch=0'])
    assert runner.train_loop.epoch == 1  # fresh counters: weights only from stage 1
    assert not torch.equal(_weights(second, 'epoch_1.pth')['image_encoder.conv1.weight'],
                           _weights(first, 'epoch_1.pth')['image_encoder.conv1.weight'])


def test_torchrun_two_processes_cpu(tmp_path, data_root):
    cfg = _config(tmp_path, data_root, max_epochs=2)
    work = str(tmp_path / 'ddp')
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # Also runs the feature-cache accumulation through the DDP wrapper.
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', str(port), osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir', work,
           '--launcher', 'pytorch', '--cfg-options', 'model.accum_freq=2',
           'train_dataloader.batch_size=4', 'log_level=INFO']
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'image tower unlocked' in proc.stdout + proc.stderr
    assert 'feature-cache accumulation: 2 micro-batches per optimizer step (DDP)' in proc.stdout + proc.stderr
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))


def test_run_demo_smoke(tmp_path, capsys):
    from tools.run_demo import format_table
    from tools.run_demo import main as demo_main
    rows = demo_main(['--work-dir', str(tmp_path / 'work'), '--data-root', str(tmp_path / 'demo'),
                      '--stage1-epochs', '1', '--stage2-epochs', '1', '--train-samples', '64'])
    out = capsys.readouterr().out
    # the console: a line per stage, the table, where things are; the full log stays in the work dir
    assert 'stage 1 (image tower locked): training 1 epochs' in out and '| stage 2 (all unlocked) |' in out
    assert not any(noise in out for noise in ('Config:', 'System environment', 'Hooks will be executed',
                                              'FileClient', 'Epoch(train)')), out
    assert len(out.splitlines()) < 25, out
    logs = list((tmp_path / 'work' / 'stage1').glob('*/*.log'))
    assert len(logs) == 1 and 'Config:' in logs[0].read_text() and 'Epoch(train)' in logs[0].read_text()
    assert list(rows) == ['stage1', 'stage2']
    assert osp.isfile(tmp_path / 'work' / 'stage1' / 'epoch_1.pth')
    assert osp.isfile(tmp_path / 'demo' / 'vocab.txt')
    table = format_table(rows)
    assert table.count('\n') == 3 and 'mean recall' in table and 'stage 2 (all unlocked)' in table
    from tools.run_demo import next_steps
    steps = next_steps(str(tmp_path / 'work'), str(tmp_path / 'demo'))
    assert str(tmp_path / 'work' / 'stage2') in steps and 'tools/test.py configs/demo/stage2.py' in steps
