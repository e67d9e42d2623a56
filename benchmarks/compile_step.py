"""Eager vs ``torch.compile`` (towers compiled in place, as ``--compile`` does) training-step time.

    python benchmarks/compile_step.py [--model vit-b-16|tiny] [--backend inductor] [--steps 5] [--batch 8]

Both copies hold the same weights; compilation happens in warm-up steps; the timed steps alternate
eager and compiled (A/B interleaved) and min and median ms/step are reported with their ratio.
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402


def _model(name: str):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from cnclip_mm.registry import MODELS
    init_default_scope('cnclip_mm')
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', f'{name}.py')).model
    cfg.tokenizer = None
    torch.manual_seed(0)
    return MODELS.build(cfg), cfg.image_encoder.get('img_size', 224)


def compare(model_name: str = 'vit-b-16', backend: str = 'inductor', steps: int = 5, batch: int = 8,
            warmup: int = 2) -> Dict[str, float]:
    """Time eager and compiled steps, interleaved; returns min/median ms of each and the ratios."""
    from train_step import _batch

    from cnclip_mm.engine.runner.compile import compile_towers
    eager, size = _model(model_name)
    compiled = copy.deepcopy(eager)
    compile_towers(compiled, dict(backend=backend))
    images, ids = _batch(batch)
    images = torch.nn.functional.interpolate(images, size=size) if size != 224 else images
    inputs = dict(images=images, text_ids=ids, image_slots=list(range(batch)), text_slots=list(range(batch)))
    runs = {}
    for name, model in (('eager', eager), ('compiled', compiled)):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def step(model=model, opt=opt):
            loss = model(inputs=inputs, mode='loss')['loss']
            loss.backward()
            opt.step()
            opt.zero_grad()
        start = time.perf_counter()
        for _ in range(warmup):
            step()
        print(f'{name}: {warmup} warm-up steps (compilation included) {time.perf_counter() - start:.1f} s')
        runs[name] = (step, [])
    for _ in range(steps):
        for step, times in runs.values():
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1000)
    stats = {}
    for name, (_, times) in runs.items():
        stats[f'{name}_min'], stats[f'{name}_median'] = min(times), statistics.median(times)
    stats['ratio_min'] = stats['compiled_min'] / stats['eager_min']
    stats['ratio_median'] = stats['compiled_median'] / stats['eager_median']
    print(f'| model | backend | eager ms min/median | compiled ms min/median | ratio min/median |\n|---|---|---|---|---|\n'
          f'| {model_name} | {backend} | {stats["eager_min"]:.0f} / {stats["eager_median"]:.0f} | '
          f'{stats["compiled_min"]:.0f} / {stats["compiled_median"]:.0f} | '
          f'{stats["ratio_min"]:.2f} / {stats["ratio_median"]:.2f} |')
    return stats


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='vit-b-16', help='a configs/_base_/models/ file name')
    parser.add_argument('--backend', default='inductor')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--batch', type=int, default=8)
    args = parser.parse_args(argv)
    return compare(args.model, args.backend, args.steps, args.batch)


if __name__ == '__main__':
    main()
