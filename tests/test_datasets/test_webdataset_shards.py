"""WebDataset shards: converter round trips, rank/worker splits, bad samples, exact resume, 2-rank epochs."""
import os
import os.path as osp
import socket
import subprocess
import sys
from collections import Counter

import pytest
import torch
import webdataset as wds
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

import cnclip_mm.engine  # noqa: F401  (StreamTrainLoop, checkpoint allow-list)
from cnclip_mm.datasets import BadSampleError, WebDatasetImageText
from cnclip_mm.datasets.hooks import iter_bad_sample_datasets
from cnclip_mm.registry import DATASETS
from tests.test_datasets.data_writers import (
    TEXTS,
    decode,
    image_bytes,
    write_jsonl_set,
    write_official,
    write_official_lmdb,
)
from tests.test_datasets.shard_helpers import make_shards, read_ids, shard_runner_cfg
from tools.data.convert_to_shards import main as convert

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def shard_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('shards'))
    make_shards(root, num=32, per_shard=4)
    return root


def _items(dataset, num_workers=0):
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=lambda x: x)
    return list(loader)


@pytest.mark.parametrize('fmt', ['tsv', 'lmdb', 'jsonl'])
def test_converter_round_trip(tmp_path, fmt):
    init_default_scope('cnclip_mm')
    if fmt == 'tsv':
        write_official(tmp_path)
    elif fmt == 'lmdb':
        write_official_lmdb(tmp_path)
    else:
        write_jsonl_set(tmp_path)
    out = tmp_path / 'out'
    sizes = convert(['--format', fmt, '--data-root', str(tmp_path), '--out-dir', str(out),
                     '--samples-per-shard', '2', '--no-progress'])
    source = DATASETS.build(dict(type={'tsv': 'ImageTextTSVDataset', 'lmdb': 'ImageTextLMDBDataset',
                                       'jsonl': 'ImageTextJsonlDataset'}[fmt],
                                 data_root=str(tmp_path), pipeline=[dict(type='LoadImage')]))
    assert sum(sizes.values()) == len(source) and all(n <= 2 for n in sizes.values())
    assert sorted(os.listdir(out)) == sorted(sizes) + ['shards.json']
    shards = WebDatasetImageText(shards=f'{out}/{{00000..{len(sizes) - 1:05d}}}.tar',
                                 pipeline=[dict(type='LoadImage')], shuffle_buffer=0, shuffle_shards=False)
    got = _items(shards)
    want = [source[i] for i in range(len(source))]
    assert len(got) == len(want) == len(shards)
    for g, w in zip(got, want):  # same order, captions, ids, pixels (bytes copied, not re-encoded)
        assert (g['text'], g['text_id'], g['image_id']) == (w['text'], w['text_id'], w['image_id'])
        assert (g['img'] == w['img']).all()
    if fmt == 'tsv':
        assert (got[0]['img'] == decode(image_bytes()[TEXTS[0][2][0]])).all()


def test_shard_patterns(shard_root):
    folder = osp.join(shard_root, 'shards')
    brace = WebDatasetImageText(shards='shards/{00000..00007}.tar', data_root=shard_root)
    glob_ = WebDatasetImageText(shards=osp.join(folder, '*.tar'))
    listed = WebDatasetImageText(shards=[osp.join(folder, '0000[0-3].tar'), osp.join(folder, '0000{4..7}.tar')])
    assert brace.urls == glob_.urls == listed.urls and len(brace.urls) == 8
    with pytest.raises(FileNotFoundError, match='00008.tar'):
        WebDatasetImageText(shards=osp.join(folder, '{00008..00009}.tar'))
    with pytest.raises(ValueError, match='epoch_length'):
        WebDatasetImageText(shards=osp.join(folder, '*.tar'), resampled=True)


def test_ranks_and_workers_get_disjoint_shards(shard_root):
    dataset = WebDatasetImageText(shards=osp.join(shard_root, 'shards', '*.tar'), shuffle_buffer=4,
                                  pipeline=[dict(type='PackCLIPInputs', meta_keys=('text_id',))])
    dataset.world_size = 2
    seen = Counter()
    for epoch in (0, 1):
        parts = []
        for rank in (0, 1):
            dataset.rank = rank
            parts += [list(dataset.shards_for(epoch, w, 2)) for w in (0, 1)]
            dataset.set_position(epoch)
            ids = [s['data_samples'].text_id for s in _items(dataset, num_workers=2)]
            assert len(ids) == len(dataset) == 16
            seen.update((epoch, i) for i in ids)
        assert sorted(sum(parts, [])) == dataset.urls and all(len(p) == 2 for p in parts)
    assert sorted(seen) == [(e, i) for e in (0, 1) for i in range(1, 33)] and set(seen.values()) == {1}


def test_resampled_stream_is_deterministic_and_per_rank(shard_root):
    kw = dict(shards=osp.join(shard_root, 'shards', '*.tar'), resampled=True, epoch_length=3,
              pipeline=[dict(type='PackCLIPInputs', meta_keys=('text_id',))])
    dataset = WebDatasetImageText(**kw)
    dataset.set_position(0, 0, 4)
    assert len(dataset) == 12

    def first(rank, n=40):
        dataset.rank = rank
        stream = iter(dataset)
        return [next(stream)['data_samples'].text_id for _ in range(n)]

    assert first(0) == first(0) != first(1)  # infinite (40 > 32 samples), seeded per rank


def _bad_shard(path):
    good, png = image_bytes()[1], image_bytes()[3]
    with wds.TarWriter(str(path)) as tar:
        tar.write({'__key__': 'ok', 'png': good, 'txt': '一只猫', 'json': b'{"text_id": 5, "image_id": 6}'})
        tar.write({'__key__': 'broken', 'jpg': b'\xff\xd8\xff not a jpeg', 'txt': '坏图'})
        tar.write({'__key__': 'notext', 'png': png})
        tar.write({'__key__': 'empty', 'png': png, 'txt': ' '})
        tar.write({'__key__': 'last', 'png': png, 'txt': '汽车'})


def test_bad_samples_in_a_shard(tmp_path):
    _bad_shard(tmp_path / 'bad.tar')
    kw = dict(shards=str(tmp_path / 'bad.tar'), shuffle_buffer=0, pipeline=[dict(type='LoadImage')])
    with pytest.raises(BadSampleError, match=r'bad\.tar key broken: corrupt or truncated image'):
        _items(WebDatasetImageText(**kw))
    dataset = WebDatasetImageText(on_bad_sample='skip', **kw)
    items = _items(dataset, num_workers=1)  # counted in a worker, read in this process
    assert [(x['text_id'], x['image_id']) for x in items] == [(5, 6), ('last', 'last')]
    assert list(iter_bad_sample_datasets(dataset)) == [dataset]
    assert dataset.bad_samples.count == 3
    examples = '\n'.join(dataset.bad_samples.examples)
    for key, problem in (('broken', 'corrupt'), ('notext', 'needs an image'), ('empty', 'empty caption')):
        assert f'bad.tar key {key}: {problem}' in examples


def _train(work, shard_root, max_iters, **extra):
    cfg = shard_runner_cfg(work, shard_root, max_iters)
    cfg.update(extra)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


def test_resume_mid_epoch_continues_the_stream(tmp_path, shard_root):
    """8 batches per epoch (2 workers); stop at iteration 5, resume to 11: same batches, same weights."""
    full = str(tmp_path / 'full')
    runner = _train(full, shard_root, 11)
    resumed = _train(str(tmp_path / 'resumed'), shard_root, 11, resume=True,
                     load_from=osp.join(full, 'iter_5.pth'))
    want, got = read_ids(full), read_ids(str(tmp_path / 'resumed'))
    assert [r[0] for r in got] == list(range(5, 11))
    assert got == want[5:]
    assert [r[1] for r in want] == [0] * 8 + [1] * 3 and runner.train_loop.epoch == 1
    assert sorted(i for r in want[:8] for i in r[2]) == list(range(1, 33))  # epoch 0: all, once
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_two_rank_training_sees_every_sample_once_per_epoch(tmp_path, shard_root):
    cfg = Config(shard_runner_cfg(None, shard_root, max_iters=8))  # 2 epochs of 4 batches per rank
    cfg.pop('work_dir')
    path = str(tmp_path / 'cfg.py')
    cfg.dump(path)
    work = str(tmp_path / 'ddp')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(port),
           osp.join(REPO, 'tools', 'train.py'), path, '--work-dir', work, '--launcher', 'pytorch']
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [read_ids(work, rank) for rank in (0, 1)]
    for epoch in (0, 1):
        per_rank = [[i for _, e, ids in r if e == epoch for i in ids] for r in rows]
        assert not set(per_rank[0]) & set(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == list(range(1, 33))
