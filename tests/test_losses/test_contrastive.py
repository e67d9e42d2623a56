"""ContrastiveLoss: direct computation on a hand-made batch and 2-process DDP equivalence."""
import gc
import math
import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from cnclip_mm.models.losses import ContrastiveLoss
from cnclip_mm.registry import MODELS


def _direct(img, txt, logit_scale, smoothing=0.0, positives=None):
    """Symmetric cross-entropy in plain Python; each row's target is uniform over its ``positives``
    (default: its own pair only, the official loss)."""
    scale = min(math.exp(logit_scale), 100.0)
    img = F.normalize(img, dim=-1)
    txt = F.normalize(txt, dim=-1)
    sim = (img @ txt.t()).tolist()
    n = len(sim)
    positives = positives or [{i} for i in range(n)]
    total = 0.0
    for rows in (sim, [list(c) for c in zip(*sim)]):
        for i, row in enumerate(rows):
            logits = [scale * v for v in row]
            m = max(logits)
            lse = m + math.log(sum(math.exp(v - m) for v in logits))
            logp = [v - lse for v in logits]
            target = [(1 - smoothing) * (j in positives[i]) / len(positives[i]) + smoothing / n
                      for j in range(n)]
            total -= sum(t * lp for t, lp in zip(target, logp))
    return total / (2 * n)


@pytest.mark.parametrize('logit_scale', [math.log(1 / 0.07), math.log(300.0)])
@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_matches_direct_computation(logit_scale, smoothing):
    img = torch.tensor([[1.0, 0.0, 0.5], [0.2, 1.0, 0.0], [0.0, 0.3, 1.0], [1.0, 1.0, 0.0]],
                       dtype=torch.float64)
    txt = torch.tensor([[0.9, 0.1, 0.4], [0.0, 1.0, 0.2], [0.1, 0.0, 1.0], [0.0, 1.0, 1.0]],
                       dtype=torch.float64)
    loss_fn = MODELS.build(dict(type='ContrastiveLoss', label_smoothing=smoothing))
    got = loss_fn(F.normalize(img, dim=-1), F.normalize(txt, dim=-1),
                  torch.tensor(logit_scale, dtype=torch.float64))
    assert got.item() == pytest.approx(_direct(img, txt, logit_scale, smoothing), abs=1e-10)


def test_scale_capped_and_bad_input():
    loss_fn = ContrastiveLoss()
    x = F.normalize(torch.randn(3, 4), dim=-1)
    y = F.normalize(torch.randn(3, 4), dim=-1)
    assert loss_fn(x, y, torch.tensor(10.0)) == pytest.approx(
        loss_fn(x, y, torch.tensor(math.log(100.0))).item(), rel=1e-6)
    with pytest.raises(ValueError, match='both image_feats and text_feats'):
        loss_fn(x, None, torch.tensor(1.0))
    with pytest.raises(ValueError, match=r'\[N, D\]'):
        loss_fn(x, y[:2], torch.tensor(1.0))
    with pytest.raises(ValueError, match='label_smoothing'):
        ContrastiveLoss(label_smoothing=1.5)


class _Towers(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.img = nn.Linear(6, 5)
        self.txt = nn.Linear(7, 5)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g, dtype=torch.float64)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), dtype=torch.float64))

    def forward(self, x, t):
        return F.normalize(self.img(x), dim=-1), F.normalize(self.txt(t), dim=-1)


def _batch():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(8, 6, generator=g, dtype=torch.float64),
            torch.randn(8, 7, generator=g, dtype=torch.float64))


def _worker(rank, world, port, local_loss, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    _ddp_step(rank, world, local_loss, out_dir)
    gc.collect()  # the DDP reducer must go before the process group (gloo teardown deadlock)
    dist.destroy_process_group()


def _ddp_step(rank, world, local_loss, out_dir):
    model = nn.parallel.DistributedDataParallel(_Towers())
    x, t = _batch()
    n = x.shape[0] // world
    img, txt = model(x[rank * n:(rank + 1) * n], t[rank * n:(rank + 1) * n])
    loss = ContrastiveLoss(local_loss=local_loss)(img, txt, model.module.logit_scale)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world
    torch.save({'loss': mean_loss, 'grads': {k: p.grad for k, p in model.module.named_parameters()}},
               os.path.join(out_dir, f'rank{rank}.pt'))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('local_loss', [False, True])
def test_ddp_matches_single_process(local_loss):
    model = _Towers()
    x, t = _batch()
    img, txt = model(x, t)
    ref = ContrastiveLoss()(img, txt, model.logit_scale)
    ref.backward()
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(2, _free_port(), local_loss, out), nprocs=2, join=True)
        for rank in range(2):
            res = torch.load(os.path.join(out, f'rank{rank}.pt'))
            assert res['loss'].item() == pytest.approx(ref.item(), abs=1e-6)
            for name, p in model.named_parameters():
                torch.testing.assert_close(res['grads'][name], p.grad, atol=1e-6, rtol=0)
