"""Peak memory of SigLipLoss's forward and backward per rank: ring exchange against all-gather, one run.

Each world size runs in its own gloo process group on this machine's CPU. Every rank holds ``--batch``
L2-normalised image and text features of width ``--dim`` (leaf tensors) and computes the loss and its
gradients once per exchange. The peak is the largest amount of tensor memory alive at once on the CPU
above the inputs (torch's ``MemTracker``: every tensor the dispatcher allocates, activations, temporaries,
received blocks and gradients), the maximum over ranks. Also printed: the largest difference between the
two exchanges' losses and gradients (they compute the same thing).

    python benchmarks/siglip_memory.py [--worlds 2,4] [--batch 1024] [--dim 512]
    python benchmarks/siglip_memory.py --tiny    # world 2, batch 32: a few seconds
"""
import argparse
import os
import os.path as osp
import socket
import sys
import tempfile
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402

EXCHANGES = ('ring', 'all_gather')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _features(rank: int, batch: int, dim: int):
    g = torch.Generator().manual_seed(rank)
    img = F.normalize(torch.randn(batch, dim, generator=g), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(batch, dim, generator=g), dim=-1).requires_grad_()
    return img, txt


def _measure(exchange: str, img, txt) -> dict:
    """Loss, gradients and the peak tensor memory (bytes) of one forward and backward."""
    from torch.distributed._tools.mem_tracker import MemTracker

    from cnclip_mm.models.losses import SigLipLoss
    loss_fn = SigLipLoss(exchange=exchange)
    logit_scale = torch.tensor(2.302585092994046, requires_grad=True)
    img.grad = txt.grad = None
    tracker = MemTracker()
    with tracker:
        loss = loss_fn(img, txt, logit_scale)['loss']
        loss.backward()
    peak = tracker.get_tracker_snapshot('peak')[torch.device('cpu')]['Total']
    return dict(peak=peak, loss=loss.detach(), grads=[img.grad.clone(), txt.grad.clone(), logit_scale.grad.clone(),
                                                      loss_fn.logit_bias.grad.clone()])


def measure_rank(batch: int, dim: int) -> dict:
    """This rank's peak bytes per exchange and the largest loss / gradient difference between them (the
    process group must be up; tests/test_losses/test_ddp_equivalence.py calls it inside its spawn)."""
    img, txt = _features(dist.get_rank(), batch, dim)
    results = {exchange: _measure(exchange, img, txt) for exchange in EXCHANGES}
    diff = max([(results['ring']['loss'] - results['all_gather']['loss']).abs().item()]
               + [(a - b).abs().max().item() for a, b in zip(results['ring']['grads'], results['all_gather']['grads'])])
    return dict(peak={e: r['peak'] for e, r in results.items()}, diff=diff)


def _worker(rank: int, world: int, port: int, batch: int, dim: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.save(measure_rank(batch, dim), osp.join(out_dir, f'rank{rank}.pt'))
    dist.barrier()
    dist.destroy_process_group()


def measure(world: int, batch: int, dim: int) -> dict:
    """``{'ring': MiB, 'all_gather': MiB, 'diff': max |difference|}`` for one world size (max over ranks)."""
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(world, _free_port(), batch, dim, out), nprocs=world, join=True)
        ranks = [torch.load(osp.join(out, f'rank{r}.pt')) for r in range(world)]
    row = {e: max(r['peak'][e] for r in ranks) / 2 ** 20 for e in EXCHANGES}
    row['diff'] = max(r['diff'] for r in ranks)
    return row


def main(argv: Optional[List[str]] = None) -> Dict[int, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--worlds', default='2,4', help='comma-separated world sizes')
    parser.add_argument('--batch', type=int, default=1024, help='features per rank')
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--tiny', action='store_true', help='world 2, batch 32, dim 16: a smoke run')
    args = parser.parse_args(argv)
    worlds, batch, dim = ([2], 32, 16) if args.tiny else ([int(w) for w in args.worlds.split(',')], args.batch,
                                                           args.dim)
    from cnclip_mm.cpu.vendor import cpu_name
    print(f'SigLipLoss forward + backward, {batch} x {dim} features per rank, float32, gloo on CPU: {cpu_name()} '
          '(shared machine); peak tensor memory per rank above the inputs')
    print('| world size | ring MiB | all-gather MiB | all-gather / ring | max diff |')
    print('| --- | --- | --- | --- | --- |')
    results = {}
    for world in worlds:
        row = results[world] = measure(world, batch, dim)
        print(f'| {world} | {row["ring"]:.2f} | {row["all_gather"]:.2f} | {row["all_gather"] / row["ring"]:.2f}x | '
              f'{row["diff"]:.1e} |')
    return results


if __name__ == '__main__':
    main()
