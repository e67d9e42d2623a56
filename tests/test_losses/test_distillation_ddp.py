"""DistillationLoss under 2-process gloo DDP equals one process on the global batch (loss and grads)."""
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from cnclip_mm.models.losses import DistillationLoss, total_loss
from tests.test_losses.test_contrastive import _free_port, _Towers


def _data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 6, generator=g, dtype=torch.float64)
    t = torch.randn(8, 7, generator=g, dtype=torch.float64)
    t_img = F.normalize(torch.randn(8, 9, generator=g, dtype=torch.float64), dim=-1)  # another width
    t_txt = F.normalize(torch.randn(8, 9, generator=g, dtype=torch.float64), dim=-1)
    return x, t, t_img, t_txt


def _loss(model, x, t, t_img, t_txt):
    loss_fn = DistillationLoss(teacher=nn.Identity(), cosine_weight=0.7, kl_weight=1.3, kl_temperature=2.0)
    img, txt = model(x, t)
    logit_scale = (model.module if hasattr(model, 'module') else model).logit_scale
    return total_loss(loss_fn(img, txt, logit_scale, teacher_image_feats=t_img, teacher_text_feats=t_txt,
                              teacher_scale=torch.tensor(30.0, dtype=torch.float64)))


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    model = nn.parallel.DistributedDataParallel(_Towers())
    part = slice(rank * 4, (rank + 1) * 4)
    loss = _loss(model, *(v[part] for v in _data()))
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    torch.save({'loss': mean_loss / world, 'grads': {k: p.grad for k, p in model.module.named_parameters()}},
               os.path.join(out_dir, f'rank{rank}.pt'))
    del model
    dist.destroy_process_group()


def test_two_process_gloo_equals_one_process():
    model = _Towers()
    ref = _loss(model, *_data())
    ref.backward()
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
        for rank in range(2):
            res = torch.load(os.path.join(out, f'rank{rank}.pt'))
            assert res['loss'].item() == pytest.approx(ref.item(), abs=1e-6)
            for name, p in model.named_parameters():
                torch.testing.assert_close(res['grads'][name], p.grad, atol=1e-6, rtol=0)
