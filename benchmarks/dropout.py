"""Dropout forward + backward on CPU: torch's ``F.dropout`` vs ``cnclip_mm.models.dropout.dropout``.

The shapes are the text tower's: the demo's packed hidden states and attention probabilities, and
RoBERTa-base's at batch 8 of 8..52 tokens. A/B interleaved, min and median of ``--reps``, ratio of
the minimums (torch / ours: > 1 means ours is faster) and the measured drop rate of ours. Prints
whether torch samples serially on this machine (then the encoder uses ours by default).

    python benchmarks/dropout.py [--reps 30] [--threads N]
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

from cnclip_mm.models import dropout as fast  # noqa: E402

P = 0.1  # BERT's hidden and attention-probability dropout
SHAPES = {'demo hidden [1280, 128]': (1280, 128), 'demo probabilities [64, 4, 20, 20]': (64, 4, 20, 20),
          'base hidden [285, 768]': (285, 768), 'base probabilities [8, 12, 51, 51]': (8, 12, 51, 51)}


def _time(fn, x: torch.Tensor) -> float:
    x = x.detach().requires_grad_()
    start = time.perf_counter()
    fn(x, P, True).sum().backward()
    return (time.perf_counter() - start) * 1000


def run(reps: int) -> List[Dict]:
    rows = []
    forms = {'torch': F.dropout, 'ours': _ours}
    for label, shape in SHAPES.items():
        x = torch.randn(*shape)
        times = {name: [] for name in forms}
        for rep in range(reps):
            for name in (('torch', 'ours') if rep % 2 == 0 else ('ours', 'torch')):
                times[name].append(_time(forms[name], x))
        rate = (_ours(x, P, True) == 0).float().mean().item()
        t, o = ((min(times[k]), statistics.median(times[k])) for k in ('torch', 'ours'))
        rows.append(dict(shape=label, torch=t, ours=o, rate=rate))
        print(f'| {label} | {t[0]:.3f} / {t[1]:.3f} | {o[0]:.3f} / {o[1]:.3f} | {t[0] / o[0]:.2f} | {rate:.4f} |',
              flush=True)
    return rows


def _ours(x, p, training):
    """``fast.dropout`` with its own masks whatever this CPU (it defers to torch where torch is vectorised)."""
    serial, fast.SERIAL_SAMPLING = fast.SERIAL_SAMPLING, True
    try:
        return fast.dropout(x, p, training)
    finally:
        fast.SERIAL_SAMPLING = serial


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reps', type=int, default=30)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f'{args.threads} threads, p = {P}; torch samples serially here: {fast.torch_mask_is_serial()} '
          f'(CPU vendor {fast._cpu_vendor()!r}, MKL {torch.backends.mkl.is_available()})')
    print('| tensor | torch ms min / median | ours ms min / median | torch / ours (min) | our drop rate |')
    print('|---|---|---|---|---|')
    return run(args.reps)


if __name__ == '__main__':
    main()
