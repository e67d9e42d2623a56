"""What ``cnclip_mm.cpu.cpu_speed`` and each of its paths earn, on the train step and on extraction.

fp32, one process, every case at the same thread count. Cases: ``off`` (cpu_speed off), ``on`` (every
path of :class:`cnclip_mm.cpu.CpuFastPaths`) and ``on - PATH`` (every path but one). Workloads, for
``--model vit-b-16`` (ViT-B/16 + RoBERTa-base): the train step of benchmarks/train_step.py (batch 8 of
224 px images and 8-52 token captions: forward, loss, backward, the schedule's fused AdamW, lr 0 so
the weights stay put) and extraction (images 32 x 224; texts 256 x 52 of mixed lengths, as
benchmarks/extract.py); for ``--model demo``: the demo's stage-2 train step (its config's tiny model,
batch 64 of 64 px images, 14-30 token captions). Every repetition runs each case once, the order
rotating, so a slow stretch of a shared machine hits every case alike. Printed: ms min / median per
case, ``off / on`` and, per path, ``(on - PATH) / on`` of the minimums: a path under 1.03 on every
train step and extraction row does not earn its place.

    python benchmarks/cpu_speed.py [--model vit-b-16|demo] [--reps 5] [--threads N] [--batch 8]
                                   [--image-batch 32] [--text-batch 256] [--clock wall|process]

``--clock process`` counts this process's CPU seconds instead of wall time: with ``--threads 1`` that
stays meaningful on a machine other jobs load.
"""
import argparse
import contextlib
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'benchmarks'))

import torch  # noqa: E402
from extract import text_batch  # noqa: E402
from train_step import _batch, _build_ours, _config_optimizer_flags, _step_fns  # noqa: E402

from cnclip_mm.cpu import CpuFastPaths, cpu_speed  # noqa: E402
from cnclip_mm.cpu.mode import PATHS  # noqa: E402
from cnclip_mm.cpu.vendor import cpu_name  # noqa: E402

CLOCK = time.perf_counter
CASES = {'off': None, 'on': PATHS, **{f'on - {p}': tuple(q for q in PATHS if q != p) for p in PATHS}}


def _train_step(model, batch: int) -> Callable[[], None]:
    from mmengine.optim import OptimWrapper
    optim = torch.optim.AdamW(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2,
                              **_config_optimizer_flags())
    wrapper = OptimWrapper(optimizer=optim)
    images, ids = _batch(batch)
    loss_fn = _step_fns('ours', model, images, ids)

    def step():
        model.train()
        with wrapper.optim_context(model):
            loss = loss_fn()
        wrapper.update_params(loss)
    return step


def _demo_train_step(batch: int = 64) -> Callable[[], None]:
    """The demo's stage-2 step: its config's model and AdamW, 64 px images, 14-30 token captions."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from cnclip_mm.models.data_preprocessor import batch_inputs
    from cnclip_mm.models.text_encoders import trim_padding
    from cnclip_mm.registry import MODELS
    from cnclip_mm.utils import share_tokenizer
    init_default_scope('cnclip_mm')
    cfg = share_tokenizer(Config.fromfile(osp.join(REPO, 'configs', 'demo', 'stage2.py')))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    g = torch.Generator().manual_seed(0)
    size = model.image_encoder.img_size
    ids = torch.zeros(batch, 32, dtype=torch.long)
    for row, length in enumerate(torch.randint(14, 30, (batch,), generator=g).tolist()):
        ids[row, 0], ids[row, length - 1] = 101, 102
        ids[row, 1:length - 1] = torch.randint(106, model.text_encoder.config.vocab_size, (length - 2,), generator=g)
    inputs = batch_inputs(torch.randn(batch, 3, size, size, generator=g), trim_padding(ids))

    def step():
        with wrapper.optim_context(model):
            loss = model(inputs, None, mode='loss')['loss']
        wrapper.update_params(loss)
    return step


def _extract(model, fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def run():
        model.eval()
        with torch.inference_mode():
            fn()
    return run


def interleaved(workloads: Dict[str, Callable[[], None]], reps: int, threads: int) -> Dict:
    """``{workload: {case: [ms, ...]}}``: each repetition runs every case once, the order rotating."""
    names = list(CASES)
    times = {w: {c: [] for c in names} for w in workloads}
    for rep in range(reps + 1):  # the first round warms up every case and is not counted
        for i in range(len(names)):
            case = names[(rep + i) % len(names)]
            paths = CASES[case]
            for workload, fn in workloads.items():
                with cpu_speed(False, threads=threads), \
                        (CpuFastPaths(paths) if paths is not None else contextlib.nullcontext()):
                    start = CLOCK()
                    fn()
                    elapsed = (CLOCK() - start) * 1000
                if rep:
                    times[workload][case].append(elapsed)
    return times


def report(times: Dict) -> Dict[str, float]:
    """Print the table; return ``{row: {workload: ratio}}``: ``off / on`` and ``(on - PATH) / on`` of the minimums."""
    workloads = list(times)
    print('| case | ' + ' | '.join(f'{w} ms min / median' for w in workloads) + ' |')
    print('|---|' + '---|' * len(workloads))
    best = {w: {c: min(v) for c, v in times[w].items()} for w in workloads}
    for case in CASES:
        cells = [f'{best[w][case]:.0f} / {statistics.median(times[w][case]):.0f}' for w in workloads]
        print(f'| {case} | ' + ' | '.join(cells) + ' |')
    gains = {'off / on': {w: best[w]['off'] / best[w]['on'] for w in workloads}}
    gains.update({f'({c}) / on': {w: best[w][c] / best[w]['on'] for w in workloads} for c in CASES
                  if c.startswith('on - ')})
    for row, ratios in gains.items():
        print(f'| {row} (min) | ' + ' | '.join(f'{r:.3f}' for r in ratios.values()) + ' |')
    return gains


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', choices=['vit-b-16', 'demo'], default='vit-b-16')
    parser.add_argument('--reps', type=int, default=5, help='counted repetitions (after one warm-up round)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--batch', type=int, default=8, help='train step batch')
    parser.add_argument('--image-batch', type=int, default=32)
    parser.add_argument('--text-batch', type=int, default=256)
    parser.add_argument('--clock', choices=['wall', 'process'], default='wall')
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == 'process' else time.perf_counter
    torch.set_num_threads(args.threads)
    if args.model == 'demo':
        workloads, title = {'demo train step 64': _demo_train_step()}, 'demo stage 2 (tiny model)'
    else:
        model = _build_ours()
        images = torch.randn(args.image_batch, 3, 224, 224, generator=torch.Generator().manual_seed(3))
        ids = text_batch(args.text_batch, full=False)
        workloads = {
            f'train step {args.batch}': _train_step(model, args.batch),
            f'images {args.image_batch}': _extract(model, lambda: model.extract_image_feat(images)),
            f'texts {args.text_batch}': _extract(model, lambda: model.extract_text_feat(ids)),
        }
        title = 'ViT-B/16 + RoBERTa-base'
    print(f'{title}, fp32, {cpu_name()}, {args.threads} thread(s), {args.reps} interleaved '
          f'reps, {args.clock} clock')
    return report(interleaved(workloads, args.reps, args.threads))


if __name__ == '__main__':
    main()
