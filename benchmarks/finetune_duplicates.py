"""Plain vs false-negative-aware contrastive loss on classification-like data (many images per caption).

The demo-sized model (configs/_base_/models/tiny.py) trains on the synthetic demo classes (10 colour x
shape classes, 200 images each). Each image's caption is its class name in a random one of five
Chinese templates (the ``ClassCaptionDataset`` default), so a batch of 64 holds ~6 images per class
whose captions are all false negatives of each other under the plain loss. Both runs use the same
config, seed, data order and number of steps; only ``ContrastiveLoss(positives=...)`` differs.
Prints zero-shot top-1 accuracy on the 500 held-out images (chance: 10 %) per seed and the mean.

``--captions one`` gives every image of a class the very same caption. Then the two losses are
equal, value and gradients (tests/test_losses/test_positive_aware.py proves it): the rows of
identical captions have identical softmaxes, so the plain target's log-probability equals the mean
over the class. Any difference that run shows is text-tower dropout and float noise.

    python benchmarks/finetune_duplicates.py [--epochs 5] [--seeds 0,1,2] [--captions templates|one]
"""
import argparse
import logging
import os.path as osp
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from cnclip_mm.datasets.demo_classes import CLASS_TEMPLATES, ensure_demo_classes  # noqa: E402


def run(positives, args, work_dir: str) -> dict:
    from cnclip_mm.engine.runner import CLIPRunner
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'finetune_classes.py'))
    data_root = args.data_root
    # 'one': one caption per class (training and classifier); 'templates': a random one of five per sample.
    templates = [CLASS_TEMPLATES[0]] if args.captions == 'one' else list(CLASS_TEMPLATES)
    cfg.tokenizer.vocab_file = osp.join(data_root, 'vocab.txt')  # the one tokenizer: model and pipeline
    cfg.model.loss = dict(type='ContrastiveLoss', positives=positives)
    cfg.train_dataloader.dataset.templates = templates
    cfg.train_dataloader.dataset.dataset.data_root = data_root
    cfg.val_dataloader.dataset.data_root = data_root
    cfg.test_dataloader = cfg.val_dataloader
    cfg.custom_hooks = [dict(type='ZeroShotClassesHook', templates=templates)]
    cfg.train_cfg.max_epochs = args.epochs
    cfg.train_cfg.val_interval = args.epochs + 1  # evaluate once, at the end
    cfg.param_scheduler[1].end = args.epochs
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.load_from = args.load_from
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=args.seed)
    cfg.log_level = 'WARNING'
    runner = CLIPRunner.from_cfg(cfg)
    start = time.time()
    runner.train()
    metrics = runner.test()
    for handler in list(runner.logger.handlers):  # its file goes with the temporary work dir
        if isinstance(handler, logging.FileHandler):
            runner.logger.removeHandler(handler)
            handler.close()
    return dict(metrics, seconds=time.time() - start, steps=runner.iter)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--seeds', default='0,1,2', help='comma-separated seeds, one pair of runs each')
    parser.add_argument('--load-from', help='start from these weights (default: random init)')
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'demo_classes'))
    parser.add_argument('--captions', choices=['one', 'templates'], default='templates',
                        help='a random template of five per sample, or one caption per class')
    args = parser.parse_args(argv)
    ensure_demo_classes(args.data_root)
    init_default_scope('cnclip_mm')
    seeds = [int(seed) for seed in args.seeds.split(',')]
    results = {'plain': [], 'aware': []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            args.seed = seed
            for name, positives in (('plain', ()), ('aware', ('image_id', 'text', 'label'))):
                results[name].append(run(positives, args, osp.join(tmp, f'{name}{seed}')))
    captions = 'one caption per class' if args.captions == 'one' else 'a random template of 5 per sample'
    print(f'demo classes, {captions}, {results["plain"][0]["steps"]} steps of batch 64 per run, '
          f'{"from " + args.load_from if args.load_from else "random init"}')
    print('| loss | ' + ' | '.join(f'top-1 seed {seed}' for seed in seeds) + ' | mean top-1 | train+test s |')
    print('|---|' + '---|' * (len(seeds) + 2))
    means = {}
    for name, runs in results.items():
        means[name] = sum(r['zeroshot/top1'] for r in runs) / len(runs)
        print(f'| {name} | ' + ' | '.join(f'{r["zeroshot/top1"]:.1f}' for r in runs)
              + f' | {means[name]:.1f} | {sum(r["seconds"] for r in runs):.0f} |')
    wins = sum(a['zeroshot/top1'] > p['zeroshot/top1'] for a, p in zip(results['aware'], results['plain']))
    print(f'aware - plain: {means["aware"] - means["plain"]:+.1f} points on average, better in {wins} of '
          f'{len(seeds)} seeds')
    return results


if __name__ == '__main__':
    main()
