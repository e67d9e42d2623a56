"""Train a Chinese CLIP config: python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|CKPT]] ..."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import TYPE_CHECKING, List, Optional

# Run as a script (python tools/train.py / torchrun tools/train.py): make the repo importable.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from cnclip_mm.cli import DictAction  # noqa: E402  (arguments are parsed before torch and mmengine load)

if TYPE_CHECKING:
    from mmengine.config import Config
    from mmengine.runner import Runner


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train Chinese CLIP (MMEngine runner)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='auto|CKPT',
                        help='resume training state: "auto" (or no value) takes the latest '
                        'checkpoint in the work dir and starts fresh (honouring load_from) when '
                        'there is none; a path resumes from that checkpoint')
    parser.add_argument('--load-from', help='initialise weights only from a checkpoint '
                        '(= official --resume CKPT --reset-optimizer --reset-data-offset)')
    parser.add_argument('--reset-optimizer', action='store_true',
                        help='with --resume: do not restore the optimizer state')
    parser.add_argument('--reset-data-offset', action='store_true',
                        help='with --resume: restart at epoch 0 / iteration 0 with fresh schedules')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 AmpOptimWrapper on GPU, bf16 autocast on CPU')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'], default=None,
                        help='autocast dtype for --amp (default: float16 on GPU, bfloat16 on CPU)')
    parser.add_argument('--grad-checkpointing', action='store_true',
                        help='recompute tower activations in backward to save memory')
    parser.add_argument('--strategy', choices=['ddp', 'fsdp', 'deepspeed'], default='ddp',
                        help='fsdp (CPU with gloo, or GPU) / deepspeed (GPU only): FlexibleRunner with '
                        'configs/_base_/strategies/*.py')
    parser.add_argument('--compile', nargs='?', const=True, default=None, metavar='BACKEND',
                        help='torch.compile the towers (default backend inductor, or the one named)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument('--tensorboard', action='store_true', help='also log to TensorBoard')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.batch_size=64')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher (pytorch: torchrun / tools/dist_train.sh)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads per process (sets env_cfg.num_threads; default: '
                        'OMP_NUM_THREADS, else the cores of this process divided among the local ranks)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _set_amp(cfg: Config, dtype: Optional[str]) -> None:
    import torch
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
        return
    if torch.cuda.is_available() and dtype != 'bfloat16':
        wrapper.update(type='AmpOptimWrapper', dtype=dtype or 'float16', loss_scale='dynamic')
    else:
        wrapper.update(type='AutocastOptimWrapper', dtype=dtype or 'bfloat16')


def build_config(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line options."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import find_latest_checkpoint
    cfg = Config.fromfile(args.config)
    if args.strategy != 'ddp':
        base = osp.dirname(osp.dirname(osp.abspath(__file__)))
        cfg.merge_from_dict(Config.fromfile(osp.join(base, 'configs', '_base_', 'strategies',
                                                     f'{args.strategy}.py')).to_dict())
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # CLIPRunner's loader never executes a checkpoint's stored config and checks keys strictly.
    cfg.setdefault('runner_type', 'CLIPRunner')
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        _set_amp(cfg, args.amp_dtype)
    if args.compile is not None:
        cfg.compile = True if args.compile is True else dict(backend=args.compile)
    if args.no_validate:
        for key in ('val_dataloader', 'val_evaluator', 'val_cfg'):
            cfg[key] = None
        ckpt = cfg.get('default_hooks', {}).get('checkpoint')
        if ckpt is not None:
            ckpt.pop('save_best', None)
    if args.tensorboard:
        backends = list(cfg.get('visualizer', {}).get('vis_backends') or [dict(type='LocalVisBackend')])
        backends.append(dict(type='TensorboardVisBackend'))
        cfg.visualizer = dict(type='Visualizer', vis_backends=backends)
    if args.load_from:
        cfg.load_from = args.load_from
    if args.resume == 'auto':
        # Resume the work dir's own run if there is one; otherwise start (from load_from, if set).
        if find_latest_checkpoint(cfg.work_dir) is not None:
            cfg.resume, cfg.load_from = True, None
        else:
            cfg.resume = False
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.reset_optimizer:
        cfg.reset_optimizer = True
    if args.reset_data_offset:
        cfg.reset_data_offset = True
    if args.launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    return cfg


def main(argv: Optional[List[str]] = None) -> Runner:
    args = parse_args(argv)
    from mmengine.registry import RUNNERS, init_default_scope
    from mmengine.runner import Runner

    import cnclip_mm.engine  # noqa: F401  (registers hooks, runner, DDP wrapper; checkpoint allow-list)
    from cnclip_mm.engine.preflight import check_inputs, explain_small_dataset
    cfg = build_config(args)
    check_inputs(cfg, 'train', config_name=args.config)  # every missing input at once, before any build
    init_default_scope(cfg.get('default_scope', 'cnclip_mm'))
    if args.threads is not None:
        cfg.merge_from_dict({'env_cfg.num_threads': args.threads})  # applied by cpu_speed in train()
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.grad_checkpointing:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        model.set_grad_checkpointing(True)
    try:
        runner.train()
    except AssertionError as err:  # mmengine's bare "epoch_length must be a positive integer"
        message = explain_small_dataset(runner, err)
        if message:
            raise ValueError(message) from err
        raise
    if args.launcher != 'none':
        # An orderly shutdown: otherwise gloo can deadlock or abort at interpreter exit.
        from cnclip_mm.engine import teardown_distributed
        teardown_distributed(runner)
    return runner


if __name__ == '__main__':
    main()
