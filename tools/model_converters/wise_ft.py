"""WiSE-FT: interpolate the weights of a zero-shot and a fine-tuned checkpoint (same architecture).

    python tools/model_converters/wise_ft.py ZERO_SHOT FINE_TUNED --alpha 0.5 --out OUT.pth
    python tools/model_converters/wise_ft.py ZERO_SHOT FINE_TUNED --alphas 0,0.1,0.2,...,1 \\
        --eval CONFIG --out OUT_DIR    # OUT_DIR/alpha_0.50.pth ..., wise_ft.json, wise_ft.png

Inputs may be in any supported format (official .pt, HF folder, mmpretrain, own). With ``--eval`` each
interpolated model is evaluated with CONFIG's test dataloader and evaluator, and every metric is plotted
against alpha (accuracy for zero-shot configs, recall for retrieval ones).
"""
import argparse
import json
import os
import os.path as osp
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from cnclip_mm.cli import DictAction  # noqa: E402  (arguments are parsed before torch and mmengine load)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='WiSE-FT weight interpolation')
    parser.add_argument('zero_shot', help='the zero-shot (pre-fine-tuning) checkpoint, any format')
    parser.add_argument('fine_tuned', help='the fine-tuned checkpoint of the same architecture')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--alpha', type=float, help='weight of the fine-tuned model; --out is a .pth')
    group.add_argument('--alphas', help='comma-separated alphas; --out is a folder')
    parser.add_argument('--out', required=True, help='output checkpoint (--alpha) or folder (--alphas)')
    parser.add_argument('--eval', metavar='CONFIG', help='with --alphas: evaluate each with this test config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    parser.add_argument('--work-dir', help='logs of the evaluation (default: OUT/eval)')
    args = parser.parse_args(argv)
    if args.eval and args.alphas is None:
        parser.error('--eval needs --alphas')
    return args


def _alphas(text: str) -> List[float]:
    try:
        values = [float(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise SystemExit(f'--alphas must be comma-separated numbers, got {text!r}') from None
    if not values:
        raise SystemExit('--alphas is empty')
    return values


def evaluate(config: str, states: Dict[float, dict], args) -> Dict[float, Dict[str, float]]:
    """Test metrics of each interpolated state dict, with one runner built from ``config``."""
    from mmengine.config import Config
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    from cnclip_mm.models.converters import load_state_dict_into
    from cnclip_mm.registry import RUNNERS
    cfg = Config.fromfile(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or osp.join(args.out, 'eval')
    cfg.load_from, cfg.resume = None, False
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    results = {}
    for alpha, state_dict in states.items():
        load_state_dict_into(model, state_dict, strict=True, source=f'WiSE-FT alpha={alpha}')
        results[alpha] = {k: float(v) for k, v in runner.test().items()}
        print(f'alpha={alpha:.2f}: ' + ', '.join(f'{k}={v:.2f}' for k, v in results[alpha].items()))
    return results


def plot(results: Dict[float, Dict[str, float]], path: str, title: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    alphas = sorted(results)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in results[alphas[0]]:
        ax.plot(alphas, [results[a][key] for a in alphas], marker='o', label=key)
    ax.set_xlabel('alpha (0 = zero-shot, 1 = fine-tuned)')
    ax.set_ylabel('accuracy / recall (%)')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    from cnclip_mm.models.converters.wise_ft import (
        interpolate_state_dicts,
        load_pair,
        save_interpolated,
    )
    init_default_scope('cnclip_mm')
    zs, ft, model_cfg = load_pair(args.zero_shot, args.fine_tuned)
    sources = (args.zero_shot, args.fine_tuned)
    if args.alpha is not None:
        save_interpolated(interpolate_state_dicts(zs, ft, args.alpha), args.out, model_cfg, args.alpha, sources)
        print(f'saved {args.out}')
        return args.out
    states = {}
    for alpha in _alphas(args.alphas):
        states[alpha] = interpolate_state_dicts(zs, ft, alpha)
        save_interpolated(states[alpha], osp.join(args.out, f'alpha_{alpha:.2f}.pth'), model_cfg, alpha, sources)
    print(f'saved {len(states)} checkpoints under {args.out}')
    if not args.eval:
        return args.out
    results = evaluate(args.eval, states, args)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'wise_ft.json'), 'w', encoding='utf-8') as f:
        json.dump({f'{a:g}': m for a, m in results.items()}, f, indent=2, ensure_ascii=False)
    png = plot(results, osp.join(args.out, 'wise_ft.png'), f'WiSE-FT on {osp.basename(args.eval)}')
    print(f'plot: {png}')
    return results


if __name__ == '__main__':
    main()
