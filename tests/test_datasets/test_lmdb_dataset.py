"""ImageTextLMDBDataset on LMDBs in the official layout, and its equality with the TSV reader."""
import importlib.util
from pathlib import Path

import lmdb
import numpy as np
import pytest
from data_writers import (
    TEXTS,
    image_bytes,
    lmdb_items,
    pipeline,
    write_official,
    write_official_lmdb,
)
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from cnclip_mm.datasets.lmdb_writer import build_lmdb
from cnclip_mm.registry import DATASETS

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def build(root, type_='ImageTextLMDBDataset', **kwargs):
    cfg = dict(type=type_, data_root=str(root), split='train', pipeline=pipeline(8))
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_reads_official_layout(tmp_path):
    write_official_lmdb(tmp_path)
    ds = build(tmp_path)
    assert [(ds[i]['data_samples'].text_id, ds[i]['data_samples'].image_id) for i in range(len(ds))] == \
        [(11, 1), (12, 1), (12, 2), (13, 3)]
    test = build(tmp_path, test_mode=True)
    assert len(test) == 6
    assert [test[i]['data_samples'].image_id for i in range(3)] == [1, 2, 3]
    assert [(test[i]['data_samples'].text_id, test[i]['data_samples'].gt_image_ids) for i in range(3, 6)] \
        == [(t, ids) for t, _, ids in TEXTS]


def test_build_lmdb_matches_official_bytes(tmp_path):
    images = image_bytes()
    write_official(tmp_path / 'tsv', images=images)
    build_lmdb(str(tmp_path / 'tsv'), ['train'], show_progress=False)
    write_official_lmdb(tmp_path / 'ref', images=images)
    for name in ('imgs', 'pairs'):
        assert lmdb_items(tmp_path / 'tsv' / 'lmdb' / 'train' / name) == \
            lmdb_items(tmp_path / 'ref' / 'lmdb' / 'train' / name)


@pytest.mark.parametrize('test_mode', [False, True])
def test_tsv_and_lmdb_give_identical_items(tmp_path, vocab_file, test_mode):
    write_official(tmp_path)
    build_lmdb(str(tmp_path), ['train'], show_progress=False)
    steps = pipeline(8, vocab_file)
    tsv = build(tmp_path, 'ImageTextTSVDataset', pipeline=steps, test_mode=test_mode)
    lmdb_ds = build(tmp_path, pipeline=steps, test_mode=test_mode)
    assert len(tsv) == len(lmdb_ds) == (6 if test_mode else 4)
    for i in range(len(tsv)):
        a, b = tsv[i], lmdb_ds[i]
        assert (a['inputs'] is None) == (b['inputs'] is None)
        if a['inputs'] is not None:
            assert np.array_equal(a['inputs'].numpy(), b['inputs'].numpy())
        assert a['data_samples'].metainfo == b['data_samples'].metainfo
        if 'text_ids' in a['data_samples']:
            assert a['data_samples'].text_ids.tolist() == b['data_samples'].text_ids.tolist()


def test_two_worker_dataloader(tmp_path):
    write_official_lmdb(tmp_path)
    ds = build(tmp_path)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=pseudo_collate)
    seen = sorted((s.text_id, s.image_id) for b in loader for s in b['data_samples'])
    assert seen == [(11, 1), (12, 1), (12, 2), (13, 3)]


def test_count_mismatch_is_reported(tmp_path):
    write_official_lmdb(tmp_path)
    env = lmdb.open(str(tmp_path / 'lmdb' / 'train' / 'imgs'))
    with env.begin(write=True) as txn:
        txn.put(b'num_images', b'7')
    env.close()
    with pytest.raises(ValueError, match='num_images says 7 but it holds 3'):
        build(tmp_path)


def test_training_pairs_keep_their_own_text(tmp_path):
    # Official LMDB pairs are independent: one text_id may come with different texts in training
    # (each pair keeps its caption); in evaluation, where texts are grouped by id, that is an error.
    texts = [(11, '一只猫', [1]), (11, '两只小狗', [2]), (13, '红色的汽车', [3])]
    write_official_lmdb(tmp_path, texts=texts)
    ds = build(tmp_path)
    assert [(ds[i]['data_samples'].image_id, ds[i]['data_samples'].text) for i in range(len(ds))] == \
        [(1, '一只猫'), (2, '两只小狗'), (3, '红色的汽车')]
    with pytest.raises(ValueError, match="text_id 11 repeats with another text"):
        build(tmp_path, test_mode=True)


def test_string_image_ids_match_integer_images(tmp_path):
    # The official loader looks images up by str(image_id): "1" in the texts is image 1.
    write_official(tmp_path, texts=[(11, '一只猫在睡觉', ['1']), (12, '两只小狗', ['1', 2])])
    ds = build(tmp_path, type_='ImageTextTSVDataset')
    assert [(ds[i]['data_samples'].text_id, ds[i]['data_samples'].image_id) for i in range(len(ds))] == \
        [(11, 1), (12, 1), (12, 2)]


def test_build_lmdb_names_a_bad_texts_line(tmp_path):
    write_official(tmp_path, jsonl_lines=['{"text_id": 11, "text": "猫", "image_ids": [1]}',
                                          '{"text_id": 12, "text": "狗", "image_ids": 2}'])
    with pytest.raises(ValueError, match=r'train_texts\.jsonl line 2: image_ids must be a list, got 2'):
        build_lmdb(str(tmp_path), ['train'], show_progress=False)


def test_zero_padded_string_and_int_ids_round_trip_through_build_lmdb(tmp_path):
    """Image keys stay the id string the official builder writes ("0007"), whatever form the texts use."""
    images = image_bytes()
    pictures = list(images.values())
    tsv = {'0007': pictures[0], 'img_b': pictures[1], '42': pictures[2]}
    write_official(tmp_path, images=tsv, texts=[(1, '一只猫', [7]), (2, '两只小狗', ['0007', 'img_b']),
                                                (3, '红色的汽车', ['42'])])
    spec = importlib.util.spec_from_file_location('build_lmdb_tool', TOOLS / 'data' / 'build_lmdb.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(['--data-dir', str(tmp_path), '--splits', 'train', '--no-progress']) == \
        {'train': {'num_samples': 4, 'num_images': 3}}
    with lmdb.open(str(tmp_path / 'lmdb' / 'train' / 'imgs'), readonly=True, lock=False) as env:
        with env.begin() as txn:
            assert sorted(k for k in txn.cursor().iternext(values=False)) == [b'0007', b'42', b'img_b',
                                                                              b'num_images']
    ds = build(tmp_path)
    tsv_ds = build(tmp_path, type_='ImageTextTSVDataset')
    got = [(ds[i]['data_samples'].text_id, ds[i]['data_samples'].image_id) for i in range(len(ds))]
    assert got == [(1, 7), (2, 7), (2, 'img_b'), (3, 42)]
    for i in range(len(ds)):
        assert np.array_equal(ds[i]['inputs'].numpy(), tsv_ds[i]['inputs'].numpy())
    test = build(tmp_path, test_mode=True)
    assert [test[i]['data_samples'].image_id for i in range(3)] == [7, 42, 'img_b']


def test_missing_and_ambiguous_lmdb_keys_are_named(tmp_path):
    from cnclip_mm.datasets.bad_samples import BadSampleError
    write_official(tmp_path, images={'7': image_bytes()[1], '0007': image_bytes()[2]},
                   texts=[(1, '一只猫', [7])])
    build_lmdb(str(tmp_path), ['train'], show_progress=False)
    with pytest.raises(ValueError, match=r"keys '0007' and '7' are the same image id 7"):
        build(tmp_path)
    write_official(tmp_path, images={'0007': image_bytes()[1]}, texts=[(1, '一只猫', [7])])
    build_lmdb(str(tmp_path), ['train'], show_progress=False)
    ds = build(tmp_path)
    write_official(tmp_path, images={'0008': image_bytes()[1]}, texts=[(1, '一只猫', [8])])
    build_lmdb(str(tmp_path), ['train'], show_progress=False)  # rebuilt under the loaded dataset
    with pytest.raises(BadSampleError, match=r"image key '0007' is missing"):
        ds[0]
