"""Demo-sized training on a quiet and on a busy CPU: torch's default threads vs the project's choice.

Each case runs N training iterations of the demo model (configs/demo: tiny ViT 64 px + 2-layer BERT,
batch 64, context 32, everything unlocked, AdamW) on random data in a fresh process:

- ``default``: torch's own thread count (one intra-op thread per core), ``OMP_NUM_THREADS`` unset;
- ``project``: :func:`cnclip_mm.utils.threads.choose_threads` (what tools/train.py, test.py and
  run_demo.py apply), also with ``OMP_NUM_THREADS`` unset.

``--data``: the steps train on the demo set through its dataloader (the time per step includes
fetching the batch): ``default`` loads in the main process with mmengine's ``pseudo_collate``;
``project`` builds configs/demo/stage2.py's loader as the runner does (``num_workers='auto'``,
``clip_collate``, the worker init). The demo data is generated on first use.

"busy" adds ``--busy`` spinning processes started and stopped by this script (each also stops on its
own after ``--max-busy-s``). Cases alternate (default, project) within each repetition; the table
gives min and median seconds per iteration and the ratios.

    python benchmarks/busy_cpu.py [--iters 20] [--reps 3] [--busy 4] [--data]
"""
import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _spin(deadline: float) -> None:
    while time.time() < deadline:
        pass


def _case(mode: str, iters: int, data: bool) -> Dict:
    """Runs in a child process: N demo-sized train steps, seconds per step."""
    sys.path.insert(0, REPO)
    import torch
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope

    from cnclip_mm.engine import CLIPRunner
    from cnclip_mm.registry import MODELS
    from cnclip_mm.utils import share_tokenizer
    from cnclip_mm.utils.threads import apply_to_config
    init_default_scope('cnclip_mm')
    cfg = share_tokenizer(Config.fromfile(osp.join(REPO, 'configs', 'demo', 'stage2.py')))
    if mode == 'project':
        apply_to_config(cfg)  # threads, and the worker init in the loaders
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    wrapper = OptimWrapper(optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3))
    batch = cfg.train_dataloader.batch_size
    if data:
        from cnclip_mm.datasets import ensure_demo_data
        ensure_demo_data(osp.join(REPO, 'data', 'demo'))
        loader_cfg = cfg.train_dataloader.to_dict()
        if mode == 'default':
            loader_cfg.update(num_workers=0, persistent_workers=False, collate_fn=dict(type='pseudo_collate'))
        loader = CLIPRunner.build_dataloader(loader_cfg, seed=0)

        def batches():
            while True:
                yield from loader
        source = batches()
    else:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(1, 200, (batch, 32), generator=g)
        ids[:, 24:] = 0
        fixed = dict(inputs=torch.randint(0, 256, (batch, 3, 64, 64), dtype=torch.uint8, generator=g),
                     data_samples=[None] * batch, text_ids=ids, text_slots=list(range(batch)))
        source = iter(lambda: fixed, None)
    times = []
    for i in range(iters + 2):
        start = time.perf_counter()
        model.train_step(next(source), wrapper)
        if i >= 2:  # the first steps warm up the allocator, the optimizer state and the loader
            times.append(time.perf_counter() - start)
    return dict(threads=torch.get_num_threads(), times=times)


def run_case(mode: str, iters: int, data: bool = False) -> Dict:
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    env['PYTHONPATH'] = REPO
    cmd = [sys.executable, __file__, '--child', mode, '--iters', str(iters)] + (['--data'] if data else [])
    out = subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--busy', type=int, default=4, help='competing busy processes')
    parser.add_argument('--max-busy-s', type=float, default=900, help='each busy process stops by then')
    parser.add_argument('--data', action='store_true', help='train on the demo set through its dataloader')
    parser.add_argument('--child', choices=['default', 'project'], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_case(args.child, args.iters, args.data)))
        return {}
    source = 'demo set through its dataloader' if args.data else 'random data'
    print(f'demo-sized training ({source}), {args.iters} iterations per case, {args.reps} reps, '
          f'{os.cpu_count()} CPUs, load average before start: {os.getloadavg()[0]:.1f}')
    results: Dict[str, Dict[str, List[float]]] = {}
    threads: Dict[str, int] = {}
    for condition in ('quiet', 'busy'):
        spinners = []
        if condition == 'busy':
            ctx = mp.get_context('spawn')
            spinners = [ctx.Process(target=_spin, args=(time.time() + args.max_busy_s,), daemon=True)
                        for _ in range(args.busy)]
            for proc in spinners:
                proc.start()
            time.sleep(1.0)  # let them take their cores
        try:
            for _ in range(args.reps):
                for mode in ('default', 'project'):
                    res = run_case(mode, args.iters, args.data)
                    results.setdefault(f'{condition}/{mode}', []).extend(res['times'])
                    threads[f'{condition}/{mode}'] = res['threads']
        finally:
            for proc in spinners:
                proc.terminate()
                proc.join()
    print('| condition | threads | default s/it min / median | project threads | project s/it min / median | '
          'default / project (median) |')
    print('|---|---|---|---|---|---|')
    med = {k: statistics.median(v) for k, v in results.items()}
    for condition in ('quiet', 'busy'):
        d, p = f'{condition}/default', f'{condition}/project'
        print(f'| {condition} | {threads[d]} | {min(results[d]):.3f} / {med[d]:.3f} | {threads[p]} | '
              f'{min(results[p]):.3f} / {med[p]:.3f} | {med[d] / med[p]:.2f} |')
    for mode in ('default', 'project'):
        print(f'{mode}: busy / quiet (median) = {med[f"busy/{mode}"] / med[f"quiet/{mode}"]:.2f}')
    return med


if __name__ == '__main__':
    main()
