"""Loss / recall / logit-scale curves from a work dir's scalars (mmengine vis_data/scalars.json) to PNG.

    python tools/analysis/plot_curves.py work_dirs/finetune_flickr --out-dir work_dirs/finetune_flickr/curves

Takes the newest ``*/vis_data/scalars.json`` under the work dir (or a scalars.json path) and writes
loss.png (keys with 'loss'), logit_scale.png, and metrics.png (retrieval/* and zeroshot/* keys).
"""
import argparse
import glob
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from cnclip_mm.evaluation.prediction_files import iter_jsonl  # noqa: E402

GROUPS = {
    'loss': lambda k: 'loss' in k,
    'logit_scale': lambda k: k == 'logit_scale' or k.endswith('/logit_scale'),
    'metrics': lambda k: k.startswith(('retrieval/', 'zeroshot/')),
}


def find_scalars(path: str) -> str:
    if osp.isfile(path):
        return path
    found = glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')) + \
        glob.glob(osp.join(path, 'vis_data', 'scalars.json'))
    if not found:
        raise FileNotFoundError(f'no vis_data/scalars.json under {path!r} (is it an mmengine work dir?)')
    return max(found, key=osp.getmtime)


def read_scalars(path: str) -> Dict[str, List[Tuple[float, float]]]:
    """``{key: [(step, value), ...]}`` from mmengine's one-JSON-per-line scalars file."""
    series: Dict[str, List[Tuple[float, float]]] = defaultdict(list)
    for lineno, rec in iter_jsonl(path):
        step = rec.get('step', rec.get('iter', lineno))
        for key, value in rec.items():
            if key not in ('step', 'iter', 'epoch') and isinstance(value, (int, float)):
                series[key].append((float(step), float(value)))
    return dict(series)


def plot(series: Dict[str, List[Tuple[float, float]]], out_dir: str) -> List[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, select in GROUPS.items():
        keys = sorted(k for k in series if select(k))
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for key in keys:
            steps, values = zip(*series[key])
            ax.plot(steps, values, marker='o' if len(steps) < 30 else None, label=key)
        ax.set_xlabel('step')
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = osp.join(out_dir, f'{name}.png')
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Optional[List[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description='Plot training curves from scalars.json')
    parser.add_argument('work_dir', help='an mmengine work dir or a scalars.json file')
    parser.add_argument('--out-dir', help='default: <work_dir>/curves')
    args = parser.parse_args(argv)
    scalars = find_scalars(args.work_dir)
    written = plot(read_scalars(scalars), args.out_dir or osp.join(
        args.work_dir if osp.isdir(args.work_dir) else osp.dirname(scalars), 'curves'))
    if not written:
        raise ValueError(f'{scalars}: no loss, logit_scale, retrieval/* or zeroshot/* scalars to plot')
    print('\n'.join(written))
    return written


if __name__ == '__main__':
    main()
