"""SIGKILL a training subprocess at four awkward points, resuming after each; the final ``--resume``
ends bit-exactly where an uninterrupted run ends.

One config for all cases: 12 samples / batch 4 = 3 iterations per epoch, 4 epochs, dropout and a
random crop (augmentation drawn from the main process RNG), validation every epoch, iteration
checkpoints every 2 iterations (mid-epoch ones included) and epoch checkpoints with a best-checkpoint
rule that only the first validation satisfies (text->image R@10 is 100 on 8 images), stage switch
(``TowerLockHook``) at epoch 2.
"""
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch

from cnclip_mm.models.converters import safe_torch_load
from tests.test_engine.conftest import (
    COLORS,
    SHAPES,
    dump_with_runtime,
    tiny_runner_cfg,
    write_tiny_tsv,
)
from tools.train import main as train_main

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# Runs tools/train.py and SIGKILLs the process at a chosen point: after hook HOOK when the runner's
# (epoch, iter) match, or half-way through writing a checkpoint file whose name contains WRITE.
DRIVER = r'''
import os, signal, sys
from mmengine.fileio.backends import LocalBackend
from cnclip_mm.engine import CLIPRunner
from tools.train import main
hook, epoch, it, write = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
call_hook = CLIPRunner.call_hook
def killing_call_hook(self, fn_name, **kwargs):
    call_hook(self, fn_name, **kwargs)
    if fn_name == hook and self.epoch == epoch and self.iter == it:
        os.kill(os.getpid(), signal.SIGKILL)
put = LocalBackend.put
def killing_put(self, obj, filepath):
    if write and write in str(filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    put(self, obj, filepath)
CLIPRunner.call_hook = killing_call_hook
LocalBackend.put = killing_put
main(sys.argv[5:])
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('kill')
    data = str(root / 'data')
    os.makedirs(data)
    write_tiny_tsv(data, 'train', 12, seed=0)
    write_tiny_tsv(data, 'test', 8, seed=1)
    tiny = tiny_runner_cfg(None, data, max_epochs=4, batch_size=4, val=True,
                           custom_hooks=[dict(type='TowerLockHook', unlock_epoch=2),
                                         dict(type='CLIPCheckpointHook', by_epoch=True, interval=1,
                                              max_keep_ckpts=1, save_best='retrieval/t2i_R@10',
                                              rule='greater')])
    # A vocabulary of the captions' characters keeps the embeddings, optimizer state and files small.
    vocab = str(root / 'vocab.txt')
    with open(vocab, 'w', encoding='utf-8') as f:
        f.write('\n'.join(['[PAD]', *[f'[unused{i}]' for i in range(99)], '[UNK]', '[CLS]', '[SEP]', '[MASK]',
                           *sorted(set(''.join(COLORS) + ''.join(SHAPES) + '一个的'))]) + '\n')
    tiny['model']['tokenizer'].update(vocab_file=vocab, context_length=16)  # shared with the pipelines
    tiny['model']['text_encoder']['vocab_size'] = 128
    train_pipeline = list(tiny['train_dataloader']['dataset']['pipeline'])
    train_pipeline.insert(1, dict(type='RandomResizedCrop', scale=32, crop_scale=(0.5, 1.0)))
    tiny['train_dataloader']['dataset']['pipeline'] = train_pipeline
    tiny['default_hooks']['checkpoint'] = dict(by_epoch=False, interval=2, max_keep_ckpts=-1, save_best=None)
    tiny['log_level'] = 'WARNING'
    path = dump_with_runtime(tiny, str(root / 'cfg.py'))
    reference = str(root / 'reference')
    train_main([path, '--work-dir', reference])
    best = [f for f in os.listdir(reference) if f.startswith('best_')]
    assert best == ['best_retrieval_t2i_R@10_epoch_1.pth']  # epochs 2-4 validate without a new best
    return root, path, safe_torch_load(osp.join(reference, 'iter_12.pth'))['state_dict']


def _killed_run(work, cfg, resume, hook='', epoch=-1, it=-1, write=''):
    # The same intra-op thread count as this process: float reductions depend on it.
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS=str(torch.get_num_threads()))
    cmd = [sys.executable, '-c', DRIVER, hook, str(epoch), str(it), write, cfg, '--work-dir', work]
    cmd += ['--resume'] if resume else []
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _last_checkpoint(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return osp.basename(f.read().strip())


# In run order: each killed run resumes the previous one (one run's worth of training for four kills).
KILLS = [
    # (b) killed in epoch 1 after its 5th iteration; the last checkpoint is mid-epoch (iter 4 of 6)
    ('mid_epoch', dict(hook='after_train_iter', epoch=1, it=4), 'iter_4.pth'),
    # (c) killed in stage 2 (first iteration of epoch 2); the last checkpoint is stage 1's
    ('across_stage_switch', dict(hook='before_train_iter', epoch=2, it=6), 'epoch_2.pth'),
    # (d) killed half-way through writing epoch_3.pth; the pointer names the iteration-8 checkpoint
    ('while_writing', dict(write='epoch_3.pth'), 'iter_8.pth'),
    # (a) killed after epoch 3's checkpoint and its validation, which did not improve the best
    ('epoch_without_new_best', dict(hook='after_val', epoch=3, it=9), 'epoch_3.pth'),
]


def test_sigkill_four_times_then_resume_is_bit_exact(setup):
    root, cfg, want = setup
    work = str(root / 'killed')
    for case, kill, last in KILLS:
        _killed_run(work, cfg, resume=case != 'mid_epoch', **kill)
        assert _last_checkpoint(work) == last, case
        if case == 'while_writing':
            assert not osp.exists(osp.join(work, 'epoch_3.pth'))  # only the partial epoch_3.pth.part
            assert osp.isfile(osp.join(work, 'epoch_2.pth'))  # pruned only after the next one is saved
    runner = train_main([cfg, '--work-dir', work, '--resume'])
    assert runner.iter == 12 and not runner.model.image_tower_locked
    got = safe_torch_load(osp.join(work, 'iter_12.pth'))['state_dict']
    assert got.keys() == want.keys()
    diff = [k for k in want if not torch.equal(want[k], got[k])]
    assert not diff, f'{len(diff)} tensors differ, e.g. {diff[:3]}'
