"""A non-UTF-8 byte and an empty caption list: a clear error naming file and line, or a counted skip.

Each case runs through the dataset and through ``tools/train.py`` (error and skip modes).
"""
import base64
import json
import os.path as osp

import pytest
from data_writers import pipeline, write_jsonl_set, write_official
from mmengine.config import Config

from cnclip_mm.datasets import BadSampleError
from cnclip_mm.registry import DATASETS
from tests.test_engine.conftest import tiny_runner_cfg, write_tiny_tsv
from tools.train import main as train_main

BAD_BYTE_LINE = b'{"text_id": 99, "text": "\xff\xfe", "image_ids": [1]}\n'


def with_bad_byte(root):
    write_official(root)
    with open(root / 'train_texts.jsonl', 'ab') as f:
        f.write(BAD_BYTE_LINE)
    return root


def with_empty_caption_list(root):
    write_jsonl_set(root)
    with open(root / 'captions.jsonl', 'a', encoding='utf-8') as f:
        f.write(json.dumps(dict(image='a.png', caption=[])) + '\n')
    return root


def test_non_utf8_byte_names_file_and_line(tmp_path):
    cfg = dict(type='ImageTextTSVDataset', data_root=str(with_bad_byte(tmp_path)), pipeline=pipeline(8))
    with pytest.raises(BadSampleError, match=r'train_texts\.jsonl line 4: not valid UTF-8 \(byte 0xff at column 26\)'):
        DATASETS.build(cfg)
    ds = DATASETS.build(dict(cfg, on_bad_sample='skip'))
    assert len(ds) == 4 and ds.num_skipped_at_load == 1  # the three good texts' four pairs are kept
    assert 'line 4: not valid UTF-8' in ds.load_examples[0]


def test_empty_caption_list_is_an_error_or_counted(tmp_path):
    cfg = dict(type='ImageTextJsonlDataset', data_root=str(with_empty_caption_list(tmp_path)), pipeline=pipeline(8))
    with pytest.raises(BadSampleError, match=r'captions\.jsonl line 4: "caption" is an empty list'):
        DATASETS.build(cfg)
    ds = DATASETS.build(dict(cfg, on_bad_sample='skip'))
    assert len(ds) == 4 and ds.num_skipped_at_load == 1
    assert 'line 4: "caption" is an empty list' in ds.load_examples[0]


def _train_config(tmp_path, dataset: dict) -> str:
    cfg = tiny_runner_cfg(str(tmp_path / 'work'), str(tmp_path), max_epochs=1)
    cfg['train_dataloader']['dataset'] = dict(cfg['train_dataloader']['dataset'], **dataset)
    path = str(tmp_path / 'cfg.py')
    Config(cfg).dump(path)
    return path


@pytest.fixture
def bad_byte_tsv(tmp_path):
    write_tiny_tsv(str(tmp_path), 'train', 8)
    with open(tmp_path / 'train_texts.jsonl', 'ab') as f:
        f.write(BAD_BYTE_LINE)
    return tmp_path


@pytest.fixture
def empty_list_jsonl(tmp_path):
    write_tiny_tsv(str(tmp_path), 'train', 8)  # the TSV's images as files for the plain-jsonl format
    (tmp_path / 'images').mkdir()
    lines = []
    for line in open(tmp_path / 'train_imgs.tsv'):
        image_id, b64 = line.rstrip('\n').split('\t')
        (tmp_path / 'images' / f'{image_id}.png').write_bytes(base64.b64decode(b64))
        lines.append(dict(image=f'{image_id}.png', caption=['一个红色的圆']))
    lines.append(dict(image='1.png', caption=[]))
    (tmp_path / 'captions.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines), encoding='utf-8')
    return tmp_path


@pytest.mark.parametrize('case', ['bad_byte', 'empty_list'])
@pytest.mark.parametrize('policy', ['error', 'skip'])
def test_through_tools_train(case, policy, request, tmp_path):
    if case == 'bad_byte':
        root = request.getfixturevalue('bad_byte_tsv')
        dataset, where, problem = {}, 'train_texts.jsonl line 9', 'not valid UTF-8'
    else:
        root = request.getfixturevalue('empty_list_jsonl')
        dataset = dict(type='ImageTextJsonlDataset', ann_file='captions.jsonl', img_dir='images')
        where, problem = 'captions.jsonl line 9', '"caption" is an empty list'
    cfg = _train_config(root, dict(dataset, on_bad_sample=policy))
    argv = [cfg]
    if policy == 'error':
        with pytest.raises(BadSampleError, match=f'{where}: {problem}'):
            train_main(argv)
        return
    runner = train_main(argv)
    ds = runner.train_dataloader.dataset
    assert ds.num_skipped_at_load == 1 and f'{where}: {problem}' in ds.load_examples[0]
    assert len(ds) == 8 and osp.isfile(osp.join(runner.work_dir, 'epoch_1.pth'))
