"""The bad-input catalogue: a clear error by default, counted skips with on_bad_sample='skip'."""
import base64
import json
from types import SimpleNamespace

import numpy as np
import pytest
from data_writers import TEXTS, image_bytes, pipeline, write_jsonl_set, write_official
from mmengine.dataset import ConcatDataset, pseudo_collate
from torch.utils.data import DataLoader

from cnclip_mm.datasets import BadSampleError, BadSampleReportHook
from cnclip_mm.registry import DATASETS


def tsv(root, **kwargs):
    cfg = dict(type='ImageTextTSVDataset', data_root=str(root), pipeline=pipeline(8))
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def with_truncated_image(root):
    images = image_bytes()
    images[2] = images[2][: len(images[2]) // 2]  # a JPEG cut in half
    return write_official(root, images=images)


def test_truncated_image_error_names_file_and_line(tmp_path):
    ds = tsv(with_truncated_image(tmp_path))
    ds[0]
    with pytest.raises(BadSampleError, match=r'train_imgs\.tsv line 2 \(image_id 2\): corrupt or truncated image'):
        ds[2]


def test_truncated_image_skipped_and_counted(tmp_path):
    ds = tsv(with_truncated_image(tmp_path), on_bad_sample='skip')
    out = ds[2]
    assert out['data_samples'].image_id != 2
    assert ds.bad_samples.count == 1 and 'corrupt or truncated' in ds.bad_samples.examples[0]


def test_corrupt_image_file_in_jsonl_set(tmp_path):
    write_jsonl_set(tmp_path)
    (tmp_path / 'images' / 'a.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    ds = DATASETS.build(dict(type='ImageTextJsonlDataset', data_root=str(tmp_path), pipeline=pipeline(8)))
    with pytest.raises(BadSampleError) as err:
        ds[0]
    # the full image path, then the jsonl line that names it
    assert f"item 0: {tmp_path / 'images' / 'a.png'} (image 'a.png' of " in str(err.value)
    assert 'captions.jsonl line 1): corrupt or truncated' in str(err.value)


def test_invalid_base64(tmp_path):
    good = base64.urlsafe_b64encode(image_bytes()[1]).decode()
    write_official(tmp_path, tsv_lines=[f'1\t{good}', '2\t@@not base64!!', f'3\t{good}'])
    ds = tsv(tmp_path)
    with pytest.raises(BadSampleError, match=r'train_imgs\.tsv line 2 \(image_id 2\): invalid base64'):
        ds[2]


def test_image_id_without_image(tmp_path):
    texts = TEXTS[:2] + [(13, '红色的汽车', [3, 99])]
    write_official(tmp_path, texts=texts)
    with pytest.raises(BadSampleError, match=r'train_texts\.jsonl line 3: image_id 99 has no image'):
        tsv(tmp_path)
    ds = tsv(tmp_path, on_bad_sample='skip')
    assert len(ds) == 4 and ds.num_skipped_at_load == 1
    assert 'image_id 99' in ds.load_examples[0]
    test = tsv(tmp_path, on_bad_sample='skip', test_mode=True)
    assert test[5]['data_samples'].gt_image_ids == [3]


def test_malformed_jsonl_line(tmp_path):
    lines = [json.dumps(dict(text_id=t, text=x, image_ids=i), ensure_ascii=False) for t, x, i in TEXTS]
    lines.insert(1, '{"text_id": 5, "text": "oops"')
    lines.append(json.dumps(dict(text_id=6, text='缺字段')))
    write_official(tmp_path, jsonl_lines=lines)
    with pytest.raises(BadSampleError, match=r'train_texts\.jsonl line 2: malformed JSON'):
        tsv(tmp_path)
    ds = tsv(tmp_path, on_bad_sample='skip')
    assert len(ds) == 4 and ds.num_skipped_at_load == 2
    assert 'missing field' in ds.load_examples[1] and 'line 5' in ds.load_examples[1]


def test_malformed_line_in_user_jsonl(tmp_path):
    write_jsonl_set(tmp_path)
    with open(tmp_path / 'captions.jsonl', 'a', encoding='utf-8') as f:
        f.write('["not", "an object"]\n')
    with pytest.raises(BadSampleError, match=r'captions\.jsonl line 4: expected a JSON object'):
        DATASETS.build(dict(type='ImageTextJsonlDataset', data_root=str(tmp_path)))


def test_empty_caption(tmp_path):
    write_official(tmp_path, texts=TEXTS + [(14, '  ', [2])])
    with pytest.raises(BadSampleError, match=r'train_texts\.jsonl line 4: empty or non-string caption'):
        tsv(tmp_path)
    assert len(tsv(tmp_path, on_bad_sample='skip')) == 4


def test_caption_longer_than_context_is_truncated_not_fatal(tmp_path, vocab_file):
    write_official(tmp_path, texts=[(11, '一' * 100, [1])])
    ds = tsv(tmp_path, pipeline=pipeline(8, vocab_file, context_length=16))
    ids = ds[0]['data_samples'].text_ids
    assert ids.shape == (16,) and ids[-1] == 102
    assert ds.pipeline.transforms[3].num_truncated == 1


def test_missing_dir_or_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='data_root: directory .*nope'):
        tsv(tmp_path / 'nope')
    (tmp_path / 'a').mkdir()
    with pytest.raises(FileNotFoundError, match='image TSV: file .*train_imgs.tsv'):
        tsv(tmp_path / 'a')
    write_official(tmp_path / 'b')
    (tmp_path / 'b' / 'train_texts.jsonl').unlink()
    with pytest.raises(FileNotFoundError, match='text jsonl: file .*train_texts.jsonl'):
        tsv(tmp_path / 'b', on_bad_sample='skip')
    with pytest.raises(FileNotFoundError, match='images LMDB: directory .*lmdb/train/imgs'):
        DATASETS.build(dict(type='ImageTextLMDBDataset', data_root=str(tmp_path / 'b')))
    with pytest.raises(FileNotFoundError, match='caption jsonl: file'):
        DATASETS.build(dict(type='ImageTextJsonlDataset', data_root=str(tmp_path / 'a')))
    write_jsonl_set(tmp_path / 'c')
    (tmp_path / 'c' / 'images' / 'a.png').unlink()
    with pytest.raises(BadSampleError, match=r"captions\.jsonl line 1: image file .*a\.png' does not exist"):
        DATASETS.build(dict(type='ImageTextJsonlDataset', data_root=str(tmp_path / 'c')))


def test_bad_policy_name_is_rejected(tmp_path):
    write_official(tmp_path)
    with pytest.raises(ValueError, match='on_bad_sample must be one of'):
        tsv(tmp_path, on_bad_sample='ignore')


def test_test_mode_never_skips_at_fetch_time(tmp_path):
    ds = tsv(with_truncated_image(tmp_path), on_bad_sample='skip', test_mode=True)
    with pytest.raises(BadSampleError, match='corrupt or truncated'):
        ds[1]


def test_worker_skips_are_reported_by_the_hook(tmp_path, monkeypatch):
    ds = tsv(with_truncated_image(tmp_path), on_bad_sample='skip')
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=pseudo_collate)
    assert sum(len(b['data_samples']) for b in loader) == 4
    assert ds.bad_samples.count == 1  # recorded in a worker, seen here
    logs = []
    monkeypatch.setattr('cnclip_mm.datasets.bad_samples.print_log', lambda msg, **kw: logs.append(msg))
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=ConcatDataset([ds])), epoch=1)
    BadSampleReportHook().after_train_epoch(runner)
    assert len(logs) == 1 and 'skipped 1 bad sample' in logs[0] and 'line 2' in logs[0]
    assert ds.bad_samples.count == 0


def test_worker_error_reaches_the_main_process(tmp_path):
    ds = tsv(with_truncated_image(tmp_path))
    loader = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=pseudo_collate, timeout=60)
    with pytest.raises(BadSampleError, match='corrupt or truncated'):
        for _ in loader:
            pass


def test_skip_counts_each_visit_once_whatever_the_redraw(tmp_path):
    # The random re-draw after a skip never lands on a known bad item, so one pass over the data
    # counts the bad item exactly once, for any random state.
    ds = tsv(with_truncated_image(tmp_path), on_bad_sample='skip')
    for seed in range(20):
        np.random.seed(seed)
        items = [ds[i] for i in range(len(ds))]
        assert all(item is not None for item in items)
        assert ds.bad_samples.count == 1, seed
        ds.bad_samples.reset()
