"""ms per training step and peak memory: our ChineseCLIP vs transformers' ChineseCLIPModel.

ViT-B/16 + RoBERTa-base, batch 8, 224 px, context 52 (caption lengths 8..52), CPU; fp32 and bf16
autocast (``--grad-ckpt``: also with gradient checkpointing). Both models hold the same weights (ours
converted with ``cnclip_mm.models.converters.hf.mm_to_hf``). One step = forward, symmetric
contrastive loss, backward, AdamW step (ours with the flags of the default schedule: fused, through
the optimizer wrapper the runner builds: ``AutocastOptimWrapper`` for bf16, as ``tools/train.py --amp``
gives on CPU; HF with torch's defaults and plain ``torch.autocast``).

Each implementation runs in a process of its own, as it would for a user: process-wide state (the
allocator's heap, what one model freed and the other reuses) stays apart. Four processes: ours as
the runner trains on a CPU (inside ``cnclip_mm.cpu.cpu_speed``), the same with ``CNCLIP_KEEP_FREED=0``
(freed memory handed back to the kernel, as glibc does by default: :mod:`cnclip_mm.cpu.heap`), ours with
``cpu_speed=False`` (the plain model code, PyTorch's kernels only, like HF) and HF. Steps alternate between the processes,
one running at a time, the order rotating every repetition; min and median, ratios of the minimums. Peak memory: each process's resident-set high-water mark over
all its steps (warm-up included, so optimizer state and gradients count, the same for both models)
above its size before the first step.

    python benchmarks/train_step.py [--reps 5] [--batch 8] [--threads N] [--dtypes fp32,bf16]

``--dtypes bf16-hf-fp32gemm``: bf16 with HF's matrix ops also sent through
:class:`cnclip_mm.cpu.Bf16GemmAsFp32`, to separate the kernel choice from the rest of
the step on CPUs without bf16 matrix instructions.
"""
import argparse
import contextlib
import math
import multiprocessing as mp
import os
import os.path as osp
import re
import statistics
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

CONTEXT = 52
SAME_KERNELS = 'bf16-hf-fp32gemm'  # bf16, HF's matmuls also through Bf16GemmAsFp32 (which ours uses here)


def _hwm_kib() -> int:
    with open('/proc/self/status') as f:
        return int(re.search(r'VmHWM:\s+(\d+)', f.read()).group(1))


def _reset_hwm() -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def _build_ours():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from cnclip_mm.registry import MODELS
    init_default_scope('cnclip_mm')
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', 'vit-b-16.py')).model
    cfg.tokenizer = None
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _build_hf(ours):
    from transformers import ChineseCLIPModel

    from cnclip_mm.models.converters.hf import mm_to_hf
    from cnclip_mm.models.converters.hf_export import build_hf_config
    hf = ChineseCLIPModel(build_hf_config(ours))
    hf.load_state_dict(mm_to_hf({k: v.detach() for k, v in ours.state_dict().items()}), strict=True)
    return hf


def _batch(n: int):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, 224, 224, generator=g)
    ids = torch.randint(106, 21128, (n, CONTEXT), generator=g)
    lengths = torch.randint(8, CONTEXT, (n,), generator=g)
    ids[:, 0] = 101
    for i, length in enumerate(lengths.tolist()):
        ids[i, length] = 102
        ids[i, length + 1:] = 0
    return images, ids


def _step_fns(impl: str, model, images, ids):
    if impl == 'ours':
        inputs = dict(images=images, text_ids=ids, image_slots=list(range(len(ids))),
                      text_slots=list(range(len(ids))))
        return lambda: model(inputs=inputs, mode='loss')['loss']
    mask = (ids != 0).long()
    return lambda: model(input_ids=ids, attention_mask=mask, pixel_values=images, return_loss=True).loss


def _config_optimizer_flags() -> dict:
    """The implementation flags (fused / foreach) our default schedule gives AdamW."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'schedules', 'pretrain_adamw_cosine.py'))
    return {k: v for k, v in cfg.optim_wrapper.optimizer.items() if k in ('fused', 'foreach')}


def _setup(impl: str, dtype: str, ckpt: bool, batch: int):
    """A model, its AdamW and a step function returning the loss."""
    ours = _build_ours()
    model = ours if impl == 'ours' else _build_hf(ours)
    del ours
    model.train()
    if ckpt:
        from gpu_train import set_grad_checkpointing  # one rule for both implementations
        set_grad_checkpointing(impl, model)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2,
                              **(_config_optimizer_flags() if impl == 'ours' else {}))
    images, ids = _batch(batch)
    loss_fn = _step_fns(impl, model, images, ids)
    if impl == 'ours':  # the wrapper the runner gets: OptimWrapper, or with --amp on CPU AutocastOptimWrapper
        from mmengine.optim import OptimWrapper

        from cnclip_mm.engine import AutocastOptimWrapper
        wrapper = AutocastOptimWrapper(optimizer=optim) if dtype != 'fp32' else OptimWrapper(optimizer=optim)

        def step():
            with wrapper.optim_context(model):
                loss = loss_fn()
            wrapper.update_params(loss)
            return loss.item()
        return model, step

    from cnclip_mm.cpu import Bf16GemmAsFp32
    gemm = Bf16GemmAsFp32 if dtype == SAME_KERNELS else contextlib.nullcontext

    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype != 'fp32'), gemm():
            loss = loss_fn()
        with gemm():
            loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return loss.item()

    return model, step


# ours as the runner trains on CPU; the same handing freed memory back (CNCLIP_KEEP_FREED=0, cnclip_mm.cpu.heap);
# ours with cpu_speed=False; HF
IMPLS = ('ours', 'ours-release', 'ours-off', 'hf')


def _worker(impl: str, dtype: str, ckpt: bool, batch: int, threads: int, conn) -> None:
    """One implementation in its own process: a step per ``'step'`` received (its ms sent back), then the
    peak memory rise on ``'stop'``."""
    from cnclip_mm.cpu import cpu_speed
    if impl == 'ours-release':
        os.environ['CNCLIP_KEEP_FREED'] = '0'
    torch.set_num_threads(threads)
    _, step = _setup('hf' if impl == 'hf' else 'ours', dtype, ckpt, batch)
    with cpu_speed(impl in ('ours', 'ours-release'), threads=threads):
        _reset_hwm()
        base = _hwm_kib()
        step()  # warm-up: allocator, optimizer state
        conn.send('ready')
        while conn.recv() == 'step':
            start = time.perf_counter()
            step()
            conn.send((time.perf_counter() - start) * 1000)
        conn.send((_hwm_kib() - base) / 1024)


def _timing(dtype: str, ckpt: bool, reps: int, batch: int, threads: int) -> Dict:
    """A process per implementation; steps alternate between them (one running at a time), the order
    rotating every repetition."""
    ctx = mp.get_context('spawn')
    procs, conns = {}, {}
    for impl in IMPLS:
        conns[impl], child = ctx.Pipe()
        procs[impl] = ctx.Process(target=_worker, args=(impl, dtype, ckpt, batch, threads, child))
        procs[impl].start()
        if conns[impl].recv() != 'ready':  # built and warmed up one after another, not side by side
            raise RuntimeError(f'{impl} worker did not start')
    times = {impl: [] for impl in IMPLS}
    for rep in range(reps):
        for i in range(len(IMPLS)):
            impl = IMPLS[(rep + i) % len(IMPLS)]
            conns[impl].send('step')
            times[impl].append(conns[impl].recv())
    row = {impl: (min(v), statistics.median(v)) for impl, v in times.items()}
    row['peak'] = {}
    for impl in IMPLS:
        conns[impl].send('stop')
        row['peak'][impl] = conns[impl].recv()
        procs[impl].join()
    return row


def _same_loss_check() -> float:
    """fp32, dropout off: both implementations give the same loss on the same batch."""
    ours = _build_ours().eval()
    hf = _build_hf(ours).eval()
    images, ids = _batch(4)
    with torch.no_grad():
        a = _step_fns('ours', ours, images, ids)().item()
        b = _step_fns('hf', hf, images, ids)().item()
    return abs(a - b)


def run(reps: int, batch: int, threads: int, dtypes=('fp32', 'bf16'), ckpts=(False,)) -> List[Dict]:
    rows = []
    for dtype in dtypes:
        for ckpt in ckpts:
            row = dict(dtype=dtype, ckpt=ckpt, **_timing(dtype, ckpt, reps, batch, threads))
            rows.append(row)
            _print_row(row)
    return rows


def _print_row(row: Dict) -> None:
    o, r, p, h, peak = row['ours'], row['ours-release'], row['ours-off'], row['hf'], row['peak']
    print(f"| {row['dtype']} | {'on' if row['ckpt'] else 'off'} | {o[0]:.0f} / {o[1]:.0f} | {r[0]:.0f} / {r[1]:.0f} | "
          f"{p[0]:.0f} / {p[1]:.0f} | {h[0]:.0f} / {h[1]:.0f} | {o[0] / h[0]:.2f} | {r[0] / h[0]:.2f} | "
          f"{p[0] / h[0]:.2f} | {peak['ours']:.0f} | {peak['ours-release']:.0f} | {peak['ours-off']:.0f} | "
          f"{peak['hf']:.0f} |", flush=True)


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reps', type=int, default=5, help='timed steps per implementation and case')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--dtypes', default='fp32,bf16')
    parser.add_argument('--grad-ckpt', action='store_true', help='also time with gradient checkpointing')
    args = parser.parse_args(argv)
    diff = _same_loss_check()
    print(f'ViT-B/16 + RoBERTa-base, batch {args.batch}, CPU, {args.threads} threads; '
          f'|loss(ours) - loss(HF)| with shared weights, fp32 eval: {diff:.2e}')
    if not math.isfinite(diff) or diff > 1e-4:
        raise SystemExit('the two implementations disagree: the timing comparison would be meaningless')
    print(f'{args.reps} steps each, a process per implementation, steps alternating; ours-release: ours handing '
          'freed memory back (CNCLIP_KEEP_FREED=0); ours-off: ours with cpu_speed=False; peak: resident-memory '
          'rise over all steps, optimizer state included')
    print('| dtype | grad ckpt | ours ms min / median | ours-release ms | ours-off ms | HF ms | ours/HF (min) | '
          'ours-release/HF | ours-off/HF | ours peak MiB | ours-release peak MiB | ours-off peak MiB | HF peak MiB |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    return run(args.reps, args.batch, args.threads, args.dtypes.split(','),
               (False, True) if args.grad_ckpt else (False,))


if __name__ == '__main__':
    main()
