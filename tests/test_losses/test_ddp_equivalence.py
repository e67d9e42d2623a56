"""The aware ContrastiveLoss (global and local), DistillationLoss and SigLipLoss (ring and all-gather exchange)
under 2-process gloo DDP equal one process on the global batch, loss and gradients to 1e-6 (one spawn for all:
process start-up dominates). The same spawn runs benchmarks/siglip_memory.py's measurement at tiny size: the
ring exchange's peak memory is below the all-gather's at world size 2."""
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from cnclip_mm.models.losses import ContrastiveLoss, DistillationLoss, total_loss
from tests.test_losses.test_contrastive import _free_port, _Towers
from tests.test_losses.test_siglip import SigLipModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
import siglip_memory  # noqa: E402

# Keys of 8 samples; duplicates across the two ranks' halves: sample 1 = 6 (image), 2 = 5 (text).
KEYS = torch.tensor([[1, 100], [2, 101], [3, 102], [4, 103], [5, 102], [6, 104], [2, 105], [7, 106]])
CASES = ('aware', 'aware_local', 'distill', 'siglip_ring', 'siglip_all_gather')


def _data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 6, generator=g, dtype=torch.float64)
    t = torch.randn(8, 7, generator=g, dtype=torch.float64)
    t_img = F.normalize(torch.randn(8, 9, generator=g, dtype=torch.float64), dim=-1)  # teacher of another width
    t_txt = F.normalize(torch.randn(8, 9, generator=g, dtype=torch.float64), dim=-1)
    return x, t, t_img, t_txt, KEYS


def _build(case):
    return SigLipModel(case[len('siglip_'):]) if case.startswith('siglip') else _Towers()


def _loss(case, model, x, t, t_img, t_txt, keys):
    if case.startswith('siglip'):
        return model(x, t)  # the loss, with its learned bias, is part of the model
    img, txt = model(x, t)
    logit_scale = (model.module if hasattr(model, 'module') else model).logit_scale
    if case == 'distill':
        loss_fn = DistillationLoss(teacher=nn.Identity(), cosine_weight=0.7, kl_weight=1.3, kl_temperature=2.0,
                                   contrastive=dict(type='ContrastiveLoss', positives=('image_id', 'text')))
        return total_loss(loss_fn(img, txt, logit_scale, pos_keys=keys, teacher_image_feats=t_img,
                                  teacher_text_feats=t_txt, teacher_scale=torch.tensor(30.0, dtype=torch.float64)))
    loss_fn = ContrastiveLoss(local_loss=case == 'aware_local', positives=('image_id', 'text'))
    return loss_fn(img, txt, logit_scale, pos_keys=keys)


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    part = slice(rank * 4, (rank + 1) * 4)
    for case in CASES:
        model = nn.parallel.DistributedDataParallel(_build(case))
        loss = _loss(case, model, *(v[part] for v in _data()))
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        torch.save({'loss': mean_loss / world, 'grads': {k: p.grad for k, p in model.module.named_parameters()}},
                   os.path.join(out_dir, f'{case}_rank{rank}.pt'))
        del model
    torch.save(siglip_memory.measure_rank(batch=32, dim=16), os.path.join(out_dir, f'memory_rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_process_gloo_equals_one_process():
    refs = {}
    for case in CASES:
        model = _build(case)
        loss = _loss(case, model, *_data())
        loss.backward()
        refs[case] = (loss.item(), {k: p.grad for k, p in model.named_parameters()})
    assert abs(refs['distill'][0] - refs['aware'][0]) > 1e-3  # the distillation terms count
    assert abs(refs['siglip_ring'][1]['loss.logit_bias']) > 1e-3  # the SigLIP bias is learned
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
        for case in CASES:
            for rank in range(2):
                res = torch.load(os.path.join(out, f'{case}_rank{rank}.pt'))
                assert res['loss'].item() == pytest.approx(refs[case][0], abs=1e-6), case
                for name, grad in refs[case][1].items():
                    torch.testing.assert_close(res['grads'][name], grad, atol=1e-6, rtol=0, msg=f'{case} {name}')
        for rank in range(2):
            memory = torch.load(os.path.join(out, f'memory_rank{rank}.pt'))
            assert memory['peak']['ring'] < memory['peak']['all_gather'] and memory['diff'] < 1e-5, memory
