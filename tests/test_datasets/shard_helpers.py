"""Shared by the shard tests: tiny shards written by the converter, a runner config, an id recorder."""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from cnclip_mm.registry import HOOKS
from tests.test_engine.conftest import tiny_runner_cfg, write_tiny_tsv
from tools.data.convert_to_shards import main as convert


def make_shards(root: str, num: int = 32, per_shard: int = 4) -> str:
    """``num`` tiny pairs (text ids 1..num) as TSV, converted to shards of ``per_shard`` samples."""
    write_tiny_tsv(root, 'train', num, seed=0)
    write_tiny_tsv(root, 'test', 8, seed=1)
    out = osp.join(root, 'shards')
    convert(['--format', 'tsv', '--data-root', root, '--out-dir', out,
             '--samples-per-shard', str(per_shard), '--no-progress'])
    return out


def shard_runner_cfg(work_dir: str, data_root: str, max_iters: int, num_workers: int = 2,
                     batch_size: int = 4, **dataset) -> dict:
    """The tiny-model runner config of tests/test_engine, reading the shards with ``StreamTrainLoop``."""
    cfg = tiny_runner_cfg(work_dir, data_root, batch_size=batch_size)
    loader = cfg['train_dataloader']
    dataset = dict(type='WebDatasetImageText', shards=osp.join(data_root, 'shards', '*.tar'),
                   shuffle_buffer=3, pipeline=loader['dataset']['pipeline'], **dataset)
    cfg['train_dataloader'] = dict(batch_size=batch_size, num_workers=num_workers, sampler=None,
                                   drop_last=True, dataset=dataset)
    cfg['param_scheduler'] = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
    cfg['train_cfg'] = dict(type='StreamTrainLoop', max_iters=max_iters)
    cfg['default_hooks'].update(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5),
                                rng_state=dict(type='RNGStateHook'))
    cfg['log_processor'] = dict(by_epoch=False)
    cfg['custom_hooks'].append(dict(type='StreamRecorderHook'))
    cfg['custom_imports'] = dict(imports=['tests.test_datasets.shard_helpers'], allow_failed_imports=False)
    return cfg


@HOOKS.register_module(force=True)
class StreamRecorderHook(Hook):
    """Writes ``[iteration, data epoch, text ids]`` of every training batch to ``ids_rank{r}.json``."""

    def before_train(self, runner) -> None:
        self.rows = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        ids = [int(s.text_id) for s in data_batch['data_samples']]
        self.rows.append([runner.iter, runner.epoch, ids])  # iter: this one's 0-based index

    def after_train(self, runner) -> None:
        with open(osp.join(runner.work_dir, f'ids_rank{get_rank()}.json'), 'w') as f:
            json.dump(self.rows, f)


def read_ids(work_dir: str, rank: int = 0) -> list:
    with open(osp.join(work_dir, f'ids_rank{rank}.json')) as f:
        return json.load(f)
