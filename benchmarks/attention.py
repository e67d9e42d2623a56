"""Attention forward + backward on CPU: SDPA (flash attention) vs the written-out form, by length.

``cnclip_mm.models.backbones.vit.attention`` writes attention out (two matmuls and a softmax) up to
``SHORT_ATTENTION`` keys and calls SDPA beyond; this prints both forms for the ViT shapes around
that bound (heads x head dim as in the tiny, B/16 and L/14 towers), A/B interleaved, min and median
of ``--reps`` and the ratio of the minimums (SDPA / written out: > 1 means the written-out form is
faster), with the largest output difference.

    python benchmarks/attention.py [--reps 20] [--threads N]
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnclip_mm.models.backbones import vit  # noqa: E402
from cnclip_mm.models.backbones.utils import written_out_attention  # noqa: E402

# (batch, heads, tokens, head dim): the demo's tiny tower at 64 px, then B/16-wide attention over
# lengths around the bound, B/16 at 224 px (197 tokens) and L/14 at 224 px (257).
SHAPES = [(64, 4, 17, 32), (8, 12, 50, 64), (8, 12, 100, 64), (8, 12, 128, 64), (8, 12, 197, 64),
          (8, 16, 257, 64)]


def _time(fn, qkv: torch.Tensor, grad: torch.Tensor) -> float:
    x = qkv.clone().requires_grad_()
    start = time.perf_counter()
    q, k, v = x.unbind(0)
    fn(q, k, v).backward(grad)
    return (time.perf_counter() - start) * 1000


def run(reps: int) -> List[Dict]:
    rows = []
    for shape in SHAPES:
        g = torch.Generator().manual_seed(0)
        qkv = torch.randn(3, *shape, generator=g)
        grad = torch.randn(*shape, generator=g)
        forms = {'sdpa': F.scaled_dot_product_attention, 'written': written_out_attention}
        times = {name: [] for name in forms}
        for fn in forms.values():
            _time(fn, qkv, grad)  # warm-up
        for rep in range(reps):
            for name in (('sdpa', 'written') if rep % 2 == 0 else ('written', 'sdpa')):
                times[name].append(_time(forms[name], qkv, grad))
        diff = (F.scaled_dot_product_attention(*qkv) - written_out_attention(*qkv)).abs().max().item()
        row = dict(shape=shape, diff=diff, **{k: (min(v), statistics.median(v)) for k, v in times.items()})
        rows.append(row)
        s, w = row['sdpa'], row['written']
        used = 'written out' if shape[2] <= vit.SHORT_ATTENTION else 'SDPA'
        print(f'| {shape} | {s[0]:.2f} / {s[1]:.2f} | {w[0]:.2f} / {w[1]:.2f} | {s[0] / w[0]:.2f} | '
              f'{diff:.1e} | {used} |', flush=True)
    return rows


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reps', type=int, default=20)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f'{args.threads} threads, fp32, forward + backward, {args.reps} repetitions each')
    print('| (batch, heads, tokens, dim) | SDPA ms min / median | written out ms min / median | '
          'SDPA / written (min) | max diff | ViT uses |')
    print('|---|---|---|---|---|---|')
    return run(args.reps)


if __name__ == '__main__':
    main()
