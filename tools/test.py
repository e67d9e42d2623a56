"""Evaluate a checkpoint (official .pt, HF folder, mmpretrain .pth or own) with a test config.

    python tools/test.py configs/zeroshot_cifar100.py clip_cn_vit-b-16.pt --out metrics.json
    python tools/test.py configs/retrieval_flickr30k-cn_vit-b-16.py ckpt.pth --show-dir show
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from typing import TYPE_CHECKING, Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere without install

from cnclip_mm.cli import DictAction  # noqa: E402  (arguments are parsed before torch and mmengine load)

if TYPE_CHECKING:
    from mmengine.config import Config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a Chinese CLIP checkpoint')
    parser.add_argument('config', help='test config file')
    parser.add_argument('checkpoint', help='checkpoint file or HF folder (any supported format), URL or model '
                        'name (downloaded once, see cnclip_mm.apis.list_models)')
    parser.add_argument('--work-dir', help='folder for logs and pictures')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--show-dir', help='write retrieval / zero-shot example pictures here (relative: '
                        'under the work dir)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries: a.b=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads per process (sets env_cfg.num_threads; default: '
                        'OMP_NUM_THREADS, else the cores of this process divided among the local ranks)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args: argparse.Namespace) -> Config:
    import torch
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'  # CPU-only machines
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = None  # loaded below through the converters, which know every format
    cfg.resume = False
    if args.show_dir:
        hooks = list(cfg.get('custom_hooks') or [])
        zeroshot = (cfg.get('test_evaluator') or {}).get('type') == 'ZeroShotAccuracy'
        hooks.append(dict(type='ZeroShotVisualizationHook' if zeroshot else 'RetrievalVisualizationHook',
                          out_dir=args.show_dir))
        cfg.custom_hooks = hooks
    return cfg


def data_hint(cfg: Config) -> str:
    from cnclip_mm.engine.preflight import DATA_HINTS
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    hint = DATA_HINTS.get(dataset.get('type'), 'see docs/evaluation.md#data')
    root = dataset.get('data_root', '?')
    return (f'The test data is expected under data_root={root!r} (change it with --cfg-options '
            f'test_dataloader.dataset.data_root=...). To prepare it: {hint.format(root=root)}.')


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper
    from mmengine.registry import init_default_scope

    from cnclip_mm.engine.preflight import check_inputs
    from cnclip_mm.models.architecture import explain_mismatch
    init_default_scope('cnclip_mm')
    cfg = build_config(args)
    check_inputs(cfg, 'test', args.checkpoint, args.config)  # every missing input at once, before any build

    from mmengine.runner import Runner

    if args.threads is not None:
        cfg.merge_from_dict({'env_cfg.num_threads': args.threads})  # applied by cpu_speed in test()

    from cnclip_mm.models.converters import load_checkpoint
    from cnclip_mm.models.zoo import resolve_weights
    from cnclip_mm.registry import RUNNERS
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    checkpoint = resolve_weights(args.checkpoint)
    try:
        fmt = load_checkpoint(model, checkpoint, strict=True)
    except (KeyError, RuntimeError, ValueError) as err:
        mismatch = explain_mismatch(cfg.model, checkpoint)
        if mismatch:
            raise ValueError(f'{mismatch}\n(loader: {str(err)[:300]})') from err
        raise
    runner.logger.info(f'loaded {args.checkpoint} ({fmt} format)')
    try:
        metrics = runner.test()
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{err}\n{data_hint(cfg)}') from err
    if args.out and is_main_process():
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(metrics, f, indent=2, ensure_ascii=False)
    if args.launcher != 'none':
        # An orderly shutdown, as in tools/train.py: otherwise gloo can abort a rank at interpreter exit.
        from cnclip_mm.engine import teardown_distributed
        teardown_distributed(runner)
    return metrics


if __name__ == '__main__':
    main()
