"""The demo: tiny Chinese CLIP, stage 1 (image tower locked) then stage 2 (all unlocked) on the
synthetic demo set, retrieval on its held-out test split after each stage.

    python tools/run_demo.py            # about 60 s on a 2-core AMD EPYC; data/demo is made on first use

Prints a line per stage and the table; the full log (config, hooks, every iteration) is in each stage's
work dir (``<work-dir>/<stage>/<timestamp>/<timestamp>.log``), and warnings still reach the console.
"""
import argparse
import logging
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

KEYS = ['t2i_R@1', 't2i_R@5', 't2i_R@10', 'i2t_R@1', 'i2t_R@5', 'i2t_R@10', 'mean_recall']
# The labels of the README's demo table.
COLUMNS = ['t2i R@1', 't2i R@5', 't2i R@10', 'i2t R@1', 'i2t R@5', 'i2t R@10', 'mean recall']
STAGES = {'stage1': 'stage 1 (image tower locked)', 'stage2': 'stage 2 (all unlocked)'}
# mmengine's own deprecation notices, raised by its CheckpointHook on every run whatever the config says;
# nothing a demo user can act on, so the console drops them (the log file keeps them).
MMENGINE_NOTICES = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias of "LocalBackend"')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Two-stage Chinese CLIP demo on synthetic data')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'demo'),
                        help='demo data folder (generated when missing)')
    parser.add_argument('--stage1-epochs', type=int, help='override configs/demo/stage1.py')
    parser.add_argument('--stage2-epochs', type=int, help='override configs/demo/stage2.py')
    parser.add_argument('--train-samples', type=int,
                        help='train on the first N pairs only (smoke runs)')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: OMP_NUM_THREADS, else the cores; logged)')
    return parser.parse_args(argv)


def _relocate(node, old: str, new: str):
    """Replace the ``old`` folder prefix of every path string in a config tree (paths compared normalised:
    the demo configs anchor theirs at the config file, ``.../configs/_base_/datasets/../../../data/demo``)."""
    if isinstance(node, dict):
        return {k: _relocate(v, old, new) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_relocate(v, old, new) for v in node)
    if isinstance(node, str) and (osp.normpath(node) + osp.sep).startswith(old + osp.sep):
        return new + osp.normpath(node)[len(old):]
    return node


def stage_config(name: str, args: argparse.Namespace, epochs: Optional[int]):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{name}.py'))
    cfg = Config(_relocate(cfg.to_dict(), osp.join(REPO, 'data', 'demo'), osp.abspath(args.data_root)))
    cfg.work_dir = osp.join(args.work_dir, name)
    if epochs:
        cfg.train_cfg.max_epochs = epochs
        cfg.train_cfg.val_interval = epochs
        cfg.default_hooks.checkpoint.interval = epochs
        cfg.param_scheduler[-1].end = epochs
    if args.train_samples:
        cfg.train_dataloader.dataset.indices = args.train_samples
        cfg.train_dataloader.batch_size = min(cfg.train_dataloader.batch_size, args.train_samples)
    return cfg


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    """Markdown table: one row per stage, R@k in percent."""
    lines = ['| stage | ' + ' | '.join(COLUMNS) + ' |', '| --- ' * (len(KEYS) + 1) + '|']
    for stage, metrics in rows.items():
        lines.append(f'| {STAGES.get(stage, stage)} | ' +
                     ' | '.join(f'{metrics[f"retrieval/{k}"]:.1f}' for k in KEYS) + ' |')
    return '\n'.join(lines)


def next_steps(work_dir: str, data_root: str) -> str:
    """Where the checkpoints are and what to run next (printed at the end of the demo)."""
    stage2 = osp.join(work_dir, 'stage2')
    pointer = osp.join(stage2, 'last_checkpoint')
    ckpt = open(pointer).read().strip() if osp.isfile(pointer) else osp.join(stage2, 'epoch_N.pth')
    return '\n'.join([
        f'checkpoints: {osp.join(work_dir, "stage1")} and {stage2} (final: {ckpt})',
        'next:',
        f'  python tools/test.py configs/demo/stage2.py {ckpt} --show-dir show        # evaluate, draw results',
        f'  python tools/analysis/plot_curves.py {stage2}                              # loss / recall curves',
        f'  python tools/demo/app.py {ckpt} --config configs/demo/stage2.py --gallery {osp.join(data_root, "test_imgs.tsv")}'
        '   # web demo (extra [demo])',
        '  python tools/train.py configs/finetune_flickr30k-cn_vit-b-16.py          # real data: docs/training.md',
    ])


def quiet_runner_class():
    """CLIPRunner whose console shows warnings and errors only; its log file keeps every record.

    ``build_logger`` is the Runner's hook for its logger; it runs before the environment, config and hook
    tables are logged, so those go to the file alone.
    """
    from cnclip_mm.engine import CLIPRunner

    class QuietConsoleRunner(CLIPRunner):
        def build_logger(self, log_level='INFO', log_file=None, **kwargs):
            logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
            for handler in logger.handlers:
                if not isinstance(handler, logging.FileHandler):
                    handler.setLevel(max(handler.level, logging.WARNING))
                    handler.addFilter(lambda record: not str(record.msg).startswith(MMENGINE_NOTICES))
            return logger

    return QuietConsoleRunner


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    import cnclip_mm.engine  # noqa: F401
    from cnclip_mm.datasets import ensure_demo_data

    start = time.time()
    ensure_demo_data(args.data_root)
    init_default_scope('cnclip_mm')
    runner_class = quiet_runner_class()
    rows: Dict[str, Dict[str, float]] = {}
    train_seconds: Dict[str, float] = {}
    load_from = None
    for name, epochs in (('stage1', args.stage1_epochs), ('stage2', args.stage2_epochs)):
        cfg = stage_config(name, args, epochs)
        if load_from is not None:
            cfg.load_from = load_from  # weights only: fresh optimizer, schedule and counters
        if args.threads is not None:
            cfg.merge_from_dict({'env_cfg.num_threads': args.threads})  # applied by cpu_speed
        runner = runner_class.from_cfg(cfg)
        print(f'{STAGES[name]}: training {cfg.train_cfg.max_epochs} epochs, log in {runner.log_dir}', flush=True)
        train_start = time.time()
        runner.train()
        train_seconds[name] = time.time() - train_start
        rows[name] = runner.test()
        load_from = osp.join(cfg.work_dir, 'last_checkpoint')
        print(f'{name} done in {train_seconds[name]:.0f} s, test mean recall '
              f'{rows[name]["retrieval/mean_recall"]:.1f}', flush=True)
    chance = 100.0 / 250
    print(f'\nRetrieval on the demo test split (250 images, 250 captions; R@1 by chance: {chance:.1f})')
    print(format_table(rows))
    print('training: ' + ' + '.join(f'{name} {sec:.0f} s' for name, sec in train_seconds.items())
          + f' = {sum(train_seconds.values()):.0f} s (validation included); wall time: {time.time() - start:.0f} s')
    print(next_steps(args.work_dir, args.data_root))
    return rows


if __name__ == '__main__':
    main()
