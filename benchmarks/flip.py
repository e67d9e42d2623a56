"""FLIP patch masking: train-step time at ``mask_ratio`` 0.5 (or ``--ratio``) against 0, side by side in one run.

ViT-B/16 + RoBERTa-base (``configs/_base_/models/vit-b-16.py``), 224 px images, 8-52 token captions, one
model whose ratio is switched between steps (same weights, same allocator state). Two workloads:
``full`` = forward of both towers, the softmax contrastive loss, backward, the schedule's fused
AdamW (lr 0, weights stay put); ``image`` = the image tower's forward and backward alone (what masking
shrinks). Every repetition runs each (workload, ratio) once, the order rotating, so a slow stretch of a
shared machine hits all alike. Printed: ms min / median per case and ``unmasked / masked`` of the minimums.

    python benchmarks/flip.py [--ratio 0.5] [--batch 4] [--reps 3] [--threads 1] [--clock process|wall]
    python benchmarks/flip.py --tiny    # the tests' tiny model, a few seconds

``--clock process`` (default) counts this process's CPU seconds: with ``--threads 1`` it stays meaningful on
a machine other jobs load.
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

CONTEXT = 52


def build_model(tiny: bool):
    """ViT-B/16 + RoBERTa-base, or the tiny test model (64 px, patch 8), from the model configs."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from cnclip_mm.registry import MODELS
    init_default_scope('cnclip_mm')
    name = 'tiny.py' if tiny else 'vit-b-16.py'
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', name)).model
    cfg.tokenizer = None
    torch.manual_seed(0)
    return MODELS.build(cfg).train()


def make_batch(n: int, img_size: int) -> dict:
    """Random normalised images and captions of 8..52 tokens, as the data preprocessor hands them over."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(106, 21128, (n, CONTEXT), generator=g)
    ids[:, 0] = 101
    for i, length in enumerate(torch.randint(8, CONTEXT, (n,), generator=g).tolist()):
        ids[i, length], ids[i, length + 1:] = 102, 0
    return dict(images=torch.randn(n, 3, img_size, img_size, generator=g), text_ids=ids,
                image_slots=list(range(n)), text_slots=list(range(n)))


def workloads(model, batch: dict) -> Dict[str, Callable[[], None]]:
    from mmengine.optim import OptimWrapper
    optim = torch.optim.AdamW(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2,
                              fused=True)
    wrapper = OptimWrapper(optimizer=optim)

    def full():
        wrapper.update_params(model(inputs=batch, mode='loss')['loss'])

    def image():
        model.image_encoder(batch['images']).square().sum().backward()
        model.zero_grad(set_to_none=True)

    return dict(full=full, image=image)


def run(ratio: float, tiny: bool = False, batch_size: int = 4, reps: int = 3, threads: int = 1,
        clock: str = 'process') -> Dict:
    """Times per (workload, ratio); returns ``{workload: {'masked': (min, median), 'unmasked': ..., 'speedup': x}}``."""
    torch.set_num_threads(threads)
    timer = time.process_time if clock == 'process' else time.perf_counter
    model = build_model(tiny)
    tower = model.image_encoder
    steps = workloads(model, make_batch(batch_size, tower.img_size))
    patches = (tower.img_size // tower.patch_size) ** 2
    tower.set_mask_ratio(ratio)
    result = dict(ratio=ratio, tokens=(1 + tower.kept_patches(patches), 1 + patches))
    cases = [(work, r) for work in steps for r in (ratio, 0.0)]
    for work, r in cases:  # warm-up: allocator, optimizer state
        tower.set_mask_ratio(r)
        steps[work]()
    times: Dict[tuple, List[float]] = {case: [] for case in cases}
    for rep in range(reps):
        for i in range(len(cases)):
            work, r = cases[(rep + i) % len(cases)]
            tower.set_mask_ratio(r)
            start = timer()
            steps[work]()
            times[(work, r)].append((timer() - start) * 1000)
    for work in steps:
        masked, unmasked = times[(work, ratio)], times[(work, 0.0)]
        result[work] = dict(masked=(min(masked), statistics.median(masked)),
                            unmasked=(min(unmasked), statistics.median(unmasked)),
                            speedup=min(unmasked) / min(masked))
    return result


def main(argv: Optional[list] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--ratio', type=float, default=0.5, help='mask ratio compared with 0')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--clock', choices=('process', 'wall'), default='process')
    parser.add_argument('--tiny', action='store_true', help='the tiny test model: a smoke run of a few seconds')
    args = parser.parse_args(argv)
    from cnclip_mm.cpu.vendor import cpu_name
    result = run(args.ratio, args.tiny, args.batch, args.reps, args.threads, args.clock)
    model = 'tiny (64 px, patch 8)' if args.tiny else 'ViT-B/16 + RoBERTa-base, 224 px'
    print(f'{model}, batch {args.batch}, {args.threads} thread(s), {args.clock} clock, {args.reps} reps, '
          f'CPU: {cpu_name()} (shared machine: other jobs may run)')
    print(f'mask_ratio {result["ratio"]}: {result["tokens"][0]} of {result["tokens"][1]} tokens per image')
    print('| workload | masked ms min / median | unmasked ms min / median | unmasked / masked |')
    print('| --- | --- | --- | --- |')
    for work in ('full', 'image'):
        row = result[work]
        print(f'| {work} | {row["masked"][0]:.0f} / {row["masked"][1]:.0f} | '
              f'{row["unmasked"][0]:.0f} / {row["unmasked"][1]:.0f} | {row["speedup"]:.2f}x |')
    return result


if __name__ == '__main__':
    main()
