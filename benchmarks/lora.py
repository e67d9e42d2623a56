"""LoRA against full fine-tuning: trainable parameters, peak memory and train-step time, side by side.

ViT-B/16 + RoBERTa-base (``configs/_base_/models/vit-b-16.py``), 224 px, captions of 8..52 tokens, with the
adapter block of ``configs/lora/finetune_muge_vit-b-16_lora.py`` (rank 16 on every Linear and the ViT's
packed q/k/v) or without it (every weight trains). One step = forward, contrastive loss, backward, AdamW
step, inside ``cnclip_mm.cpu.cpu_speed`` as the runner trains on a CPU.

Each variant runs in a process of its own; their steps alternate (one running at a time), so a busy
machine slows both alike. Step time: the process clock (CPU seconds, one thread by default), min and
median over ``--reps`` after one warm-up step. Peak memory: the process's resident-set high-water mark over
all its steps above its size before the first, so gradients and AdamW state count (full fine-tuning keeps
two moments per weight, LoRA per adapter weight only).

    python benchmarks/lora.py [--batch 4] [--reps 3] [--threads 1]
    python benchmarks/lora.py --tiny [--inline]   # the tiny model; --inline: no processes (the test)
"""

import argparse
import copy
import multiprocessing as mp
import os.path as osp
import re
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

VARIANTS = ('full', 'lora')
CONTEXT = 52


def _hwm_kib() -> int:
    with open('/proc/self/status') as f:
        return int(re.search(r'VmHWM:\s+(\d+)', f.read()).group(1))


def _reset_hwm() -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # the high-water mark restarts from the current resident size


def _rss_kib() -> int:
    with open('/proc/self/status') as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1))


def model_config(tiny: bool, lora: bool) -> dict:
    """The model config of one variant (plain data)."""
    from mmengine.config import Config

    base = 'tiny.py' if tiny else 'vit-b-16.py'
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', base)).model.to_dict()
    cfg['tokenizer'] = None
    if lora:
        leaf = Config.fromfile(osp.join(REPO, 'configs', 'lora', 'finetune_muge_vit-b-16_lora.py'))
        cfg['adapters'] = copy.deepcopy(leaf.model.adapters.to_dict())
    return cfg


def _batch(n: int, size: int, vocab: int):
    from cnclip_mm.datasets.collate import clip_collate
    from cnclip_mm.structures import DataSample

    g = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(n):
        length = int(torch.randint(8, CONTEXT + 1, (1,), generator=g))
        ids = torch.zeros(CONTEXT, dtype=torch.long)
        ids[0], ids[length - 1] = 101, 102
        ids[1 : length - 1] = torch.randint(106, vocab, (length - 2,), generator=g)
        image = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        samples.append(dict(inputs=image, data_samples=DataSample(text_ids=ids)))
    return clip_collate(samples)


class Variant:
    """One variant's model, optimizer wrapper and batch; :meth:`step` runs a step and returns CPU seconds."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        from mmengine.optim import OptimWrapper
        from mmengine.registry import init_default_scope

        from cnclip_mm.registry import MODELS

        init_default_scope('cnclip_mm')
        torch.manual_seed(0)
        self.model = MODELS.build(model_config(args.tiny, name == 'lora')).train()
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.wrapper = OptimWrapper(
            optimizer=torch.optim.AdamW(trainable, lr=1e-5, betas=(0.9, 0.98), eps=1e-6)
        )
        self.data = _batch(
            args.batch,
            self.model.image_encoder.img_size,
            self.model.text_encoder.bert.config.vocab_size,
        )
        self.counts = dict(
            trainable=sum(p.numel() for p in trainable),
            total=sum(p.numel() for p in self.model.parameters()),
        )
        _reset_hwm()
        self.start_kib = _rss_kib()

    def step(self) -> float:
        begin = time.process_time()
        self.model.train_step(self.data, self.wrapper)
        return time.process_time() - begin

    def peak_mib(self) -> float:
        return (_hwm_kib() - self.start_kib) / 1024


def _worker(name: str, args: argparse.Namespace, conn) -> None:
    """Build one variant, then run a step per message until told to stop; reply with CPU seconds."""
    from cnclip_mm.cpu import cpu_speed

    torch.set_num_threads(args.threads)
    variant = Variant(name, args)
    conn.send(variant.counts)
    with cpu_speed('auto', torch.device('cpu'), threads=args.threads):
        while conn.recv() == 'step':
            conn.send(variant.step())
    conn.send(variant.peak_mib())


def run(args: argparse.Namespace) -> Dict[str, dict]:
    if args.inline:
        return run_inline(args)
    ctx = mp.get_context('spawn')
    procs, conns, results = {}, {}, {}
    for name in VARIANTS:
        parent, child = ctx.Pipe()
        procs[name] = ctx.Process(target=_worker, args=(name, args, child), daemon=True)
        procs[name].start()
        conns[name] = parent
        results[name] = dict(conns[name].recv(), times=[])
    for rep in range(args.reps + 1):  # the first is the warm-up
        for name in VARIANTS if rep % 2 == 0 else VARIANTS[::-1]:
            conns[name].send('step')
            seconds = conns[name].recv()
            if rep:
                results[name]['times'].append(seconds)
    for name in VARIANTS:
        conns[name].send('stop')
        results[name]['peak_mib'] = conns[name].recv()
        procs[name].join()
    return results


def run_inline(args: argparse.Namespace) -> Dict[str, dict]:
    """Both variants in this process, one after the other (a smoke run: the second's memory peak sits on
    what the first left in the allocator)."""
    from cnclip_mm.cpu import cpu_speed

    results = {}
    with cpu_speed('auto', torch.device('cpu'), threads=args.threads):
        for name in VARIANTS:
            variant = Variant(name, args)
            times = [variant.step() for _ in range(args.reps + 1)][1:]
            results[name] = dict(variant.counts, times=times, peak_mib=variant.peak_mib())
            del variant
    return results


def cpu_name() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        return re.search(r'Model name:\s+(.+)', out).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        return 'unknown CPU'


def report(results: Dict[str, dict], args: argparse.Namespace) -> str:
    shape = 'tiny model' if args.tiny else 'ViT-B/16 + RoBERTa-base'
    lines = [
        f'{shape}, batch {args.batch}, {args.threads} thread(s), {args.reps} steps each after a warm-up; '
        f'{cpu_name()} (shared machine: absolute times vary, the ratios are measured side by side)',
        f'{"variant":<8}{"trainable":>14}{"of total":>10}{"step min s":>12}{"median s":>10}{"peak MiB":>10}',
    ]
    for variant in VARIANTS:
        r = results[variant]
        lines.append(
            f'{variant:<8}{r["trainable"]:>14,}{100 * r["trainable"] / r["total"]:>9.2f}%'
            f'{min(r["times"]):>12.3f}{statistics.median(r["times"]):>10.3f}{r["peak_mib"]:>10.0f}'
        )
    full, lora = results['full'], results['lora']
    lines.append(
        f'lora / full: trainable {lora["trainable"] / full["trainable"]:.4f}, step time (min) '
        f'{min(lora["times"]) / min(full["times"]):.2f}, peak memory '
        f'{lora["peak_mib"] / max(full["peak_mib"], 1e-9):.2f}'
    )
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='LoRA vs full fine-tuning: parameters, memory, step time'
    )
    parser.add_argument(
        '--tiny', action='store_true', help='the tiny model (a smoke run of seconds)'
    )
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument(
        '--inline',
        action='store_true',
        help='both variants in this process, one after the other (smoke runs)',
    )
    args = parser.parse_args(argv)
    if args.batch < 1 or args.reps < 1 or args.threads < 1:
        parser.error('--batch, --reps and --threads must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, dict]:
    args = parse_args(argv)
    results = run(args)
    print(report(results, args))
    return results


if __name__ == '__main__':
    main()
