"""A Linear layer's three CPU products, PyTorch's BLAS (MKL) vs oneDNN, on the shapes ViT-B/16 and
RoBERTa-base run.

``cnclip_mm.models.gemm`` sends the forward product ``x @ W.T`` and the data gradient ``grad @ W``
through oneDNN (``backend='auto'`` does so on x86 CPUs not made by Intel) and keeps the weight
gradient ``grad.T @ x`` with BLAS. This prints all three both ways for each shape, A/B interleaved,
min and median of ``--reps`` and the ratio of the minimums (BLAS / oneDNN: > 1 means oneDNN is
faster), with the largest difference between the two results.

    python benchmarks/gemm.py [--reps 9] [--threads 2,1]
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

from cnclip_mm.models import gemm  # noqa: E402

# (rows, in, out): ViT-B/16 train step at batch 8 (1576 tokens: MLP in and out, q/k/v, attention
# output), the text tower's packed batch of 8 captions (285 tokens), extraction batches (32 images:
# 6304 tokens; 256 captions of 52 tokens: 13312), and the demo's tiny tower (1088 tokens, width 128).
SHAPES = [(1576, 768, 3072), (1576, 3072, 768), (1576, 768, 2304), (1576, 768, 768), (285, 768, 3072),
          (285, 3072, 768), (285, 768, 768), (6304, 768, 3072), (13312, 768, 3072), (1088, 128, 512)]


def _products(m: int, k: int, n: int):
    """The three products of ``[m, k] @ W.T`` (W ``[n, k]``) both ways: name -> (blas, onednn)."""
    g = torch.Generator().manual_seed(0)
    x, w, b, grad = (torch.randn(*s, generator=g) for s in ((m, k), (n, k), (n,), (m, n)))
    return {
        'forward': (lambda: torch.addmm(b, x, w.t()), lambda: gemm.onednn_product(x, w, b)),
        'data grad': (lambda: torch.mm(grad, w), lambda: gemm.onednn_product(grad, w.t(), None)),
        'weight grad': (lambda: torch.mm(grad.t(), x), lambda: gemm.onednn_product(grad.t(), x.t(), None)),
    }


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def run(reps: int, threads: int) -> List[Dict]:
    torch.set_num_threads(threads)
    rows = []
    for shape in SHAPES:
        for product, (blas, onednn) in _products(*shape).items():
            diff = (blas() - onednn()).abs().max().item()  # also the warm-up
            times = {'blas': [], 'onednn': []}
            order = [('blas', blas), ('onednn', onednn)]
            for rep in range(reps):
                for name, fn in (order if rep % 2 == 0 else order[::-1]):
                    times[name].append(_ms(fn))
            (b_min, b_med), (o_min, o_med) = ((min(v), statistics.median(v)) for v in times.values())
            rows.append(dict(threads=threads, shape=shape, product=product, blas=(b_min, b_med),
                             onednn=(o_min, o_med), diff=diff))
            print(f'| {threads} | {shape} | {product} | {b_min:.2f} / {b_med:.2f} | {o_min:.2f} / {o_med:.2f} | '
                  f'{b_min / o_min:.2f} | {diff:.1e} |', flush=True)
    return rows


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reps', type=int, default=9)
    parser.add_argument('--threads', default=f'{torch.get_num_threads()},1', help='comma-separated counts')
    args = parser.parse_args(argv)
    print(f'fp32, {args.reps} repetitions each; {gemm.describe()}; CPU vendor {gemm.cpu_vendor()}')
    print('| threads | (rows, in, out) | product | BLAS ms min / median | oneDNN ms min / median | '
          'BLAS / oneDNN (min) | max diff |')
    print('|---|---|---|---|---|---|---|')
    rows = []
    for threads in dict.fromkeys(int(t) for t in args.threads.split(',')):
        rows += run(args.reps, threads)
    return rows


if __name__ == '__main__':
    main()
