"""Loss / recall / logit-scale curves from a work dir's scalars (mmengine vis_data/scalars.json) to PNG.

    python tools/analysis/plot_curves.py work_dirs/finetune_flickr --out-dir work_dirs/finetune_flickr/curves

Joins every run of the work dir (``<timestamp>/vis_data/scalars.json``, oldest first: a resumed run continues
the earlier ones, and a step logged twice keeps the later value), or reads one scalars.json, and writes loss.png
(keys with 'loss'), logit_scale.png, and metrics.png (retrieval/* and zeroshot/* keys, one small panel per
metric with markers and the last value written in, so metrics with equal values or only a few evaluations
stay readable; against epochs with integer ticks when training was epoch-based). Legends sit outside the
plot area.
"""
import argparse
import glob
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

GROUPS = {
    'loss': lambda k: 'loss' in k,
    'logit_scale': lambda k: k == 'logit_scale' or k.endswith('/logit_scale'),
    'metrics': lambda k: k.startswith(('retrieval/', 'zeroshot/')),
}


def find_scalars(path: str) -> List[str]:
    """The scalars files of every run in a work dir, oldest first (timestamp folder names sort by time)."""
    if osp.isfile(path):
        return [path]
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')),
                   key=lambda f: (osp.basename(osp.dirname(osp.dirname(f))), osp.getmtime(f)))
    found += glob.glob(osp.join(path, 'vis_data', 'scalars.json'))
    if not found:
        raise FileNotFoundError(f'no vis_data/scalars.json under {path!r} (is it an mmengine work dir?)')
    return found


def read_scalars(paths) -> Tuple[Dict[str, List[Tuple[float, float]]], bool]:
    """``({key: [(step, value), ...] sorted by step}, by_epoch)`` from mmengine's scalars files, joined in
    order (a later run's value wins for a step logged twice). ``by_epoch``: training records carry an
    ``epoch``, so evaluation records' ``step`` is an epoch."""
    from cnclip_mm.evaluation.prediction_files import iter_jsonl  # here: --help stays fast
    joined: Dict[str, Dict[float, float]] = defaultdict(dict)
    by_epoch = False
    for path in [paths] if isinstance(paths, str) else paths:
        for lineno, rec in iter_jsonl(path):
            step = rec.get('step', rec.get('iter', lineno))
            by_epoch = by_epoch or 'epoch' in rec
            for key, value in rec.items():
                if key not in ('step', 'iter', 'epoch') and isinstance(value, (int, float)):
                    joined[key][float(step)] = float(value)
    return {key: sorted(points.items()) for key, points in joined.items()}, by_epoch


def plot(series: Dict[str, List[Tuple[float, float]]], out_dir: str, by_epoch: bool = False) -> List[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, select in GROUPS.items():
        keys = sorted(k for k in series if select(k))
        if not keys:
            continue
        fig = _metric_panels(plt, series, keys, by_epoch) if name == 'metrics' else _one_axis(plt, series, keys)
        fig.suptitle(name)
        path = osp.join(out_dir, f'{name}.png')
        fig.savefig(path, dpi=90, bbox_inches='tight')
        plt.close(fig)
        written.append(path)
    return written


def _one_axis(plt, series, keys):
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        steps, values = zip(*series[key])
        ax.plot(steps, values, marker='o' if len(steps) < 30 else None, label=key)
    ax.set_xlabel('iteration')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def _metric_panels(plt, series, keys, by_epoch: bool):
    """One panel per metric: with few evaluations and equal values (R@10 = 100 for both directions)
    lines on one axis hide each other."""
    from matplotlib.ticker import MaxNLocator
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        steps, values = zip(*series[key])
        ax.plot(steps, values, marker='o', markersize=5)
        ax.annotate(f'{values[-1]:.4g}', (steps[-1], values[-1]), textcoords='offset points', xytext=(0, 6),
                    ha='center', fontsize=8)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel('epoch' if by_epoch else 'iteration', fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(x=0.15, y=0.25)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(keys):]:
        ax.axis('off')
    fig.tight_layout()
    return fig


def main(argv: Optional[List[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description='Plot training curves from scalars.json')
    parser.add_argument('work_dir', help='an mmengine work dir or a scalars.json file')
    parser.add_argument('--out-dir', help='default: <work_dir>/curves')
    args = parser.parse_args(argv)
    scalars = find_scalars(args.work_dir)
    series, by_epoch = read_scalars(scalars)
    written = plot(series, args.out_dir or osp.join(
        args.work_dir if osp.isdir(args.work_dir) else osp.dirname(scalars[0]), 'curves'), by_epoch)
    if not written:
        raise ValueError(f'{", ".join(scalars)}: no loss, logit_scale, retrieval/* or zeroshot/* scalars to plot')
    print('\n'.join(written))
    return written


if __name__ == '__main__':
    main()
