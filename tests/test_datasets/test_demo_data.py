"""The synthetic demo set: deterministic, learnable captions, its own vocab, generated when asked (generate_if_missing)."""
import hashlib
import json

import pytest

from cnclip_mm.datasets.demo import COLORS, SHAPES, demo_vocab, ensure_demo_data, make_demo_data
from cnclip_mm.registry import DATASETS, MODELS

FILES = ('train_imgs.tsv', 'train_texts.jsonl', 'valid_imgs.tsv', 'valid_texts.jsonl', 'test_imgs.tsv',
         'test_texts.jsonl', 'vocab.txt')


def digest(root):
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in FILES}


def test_deterministic_and_sized(tmp_path):
    make_demo_data(str(tmp_path / 'a'))
    make_demo_data(str(tmp_path / 'b'))
    assert digest(tmp_path / 'a') == digest(tmp_path / 'b')
    make_demo_data(str(tmp_path / 'c'), seed=1)
    assert digest(tmp_path / 'c')['train_imgs.tsv'] != digest(tmp_path / 'a')['train_imgs.tsv']
    counts = {}
    for split in ('train', 'valid', 'test'):
        lines = (tmp_path / 'a' / f'{split}_texts.jsonl').read_text(encoding='utf-8').splitlines()
        counts[split] = sum(len(json.loads(line)['image_ids']) for line in lines)
    assert counts['train'] >= 2000 and 200 <= counts['valid'] <= 300 and 200 <= counts['test'] <= 300


def test_vocab_and_captions(tmp_path, monkeypatch):
    root = tmp_path / 'demo'
    make_demo_data(str(root))
    vocab = (root / 'vocab.txt').read_text(encoding='utf-8').splitlines()
    assert vocab == demo_vocab()
    assert [vocab[i] for i in (0, 100, 101, 102, 103)] == ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    tok = MODELS.build(dict(type='ChineseTokenizer', vocab_file=str(root / 'vocab.txt'), context_length=32))
    ds = DATASETS.build(dict(type='ImageTextTSVDataset', data_root=str(root), split='valid', pipeline=[]))
    for i in range(len(ds)):
        text = ds.get_data_info(i)['text']
        assert any(c in text for c in COLORS) and any(s in text for s in SHAPES)
        ids = tok(text)[0]
        assert 100 not in ids.tolist() and (ids != 0).sum() <= 32


def test_demo_dataset_generates_once(tmp_path, vocab_file):
    root = tmp_path / 'demo'
    pipe = [dict(type='LoadImage'), dict(type='PackCLIPInputs')]
    with pytest.raises(FileNotFoundError, match=f'{root}.*generate_if_missing=True'):  # a typo stays an error
        DATASETS.build(dict(type='DemoImageTextDataset', data_root=str(root), split='test', pipeline=pipe))
    assert not root.exists()
    ds = DATASETS.build(dict(type='DemoImageTextDataset', data_root=str(root), generate_if_missing=True,
                             split='test', test_mode=True, pipeline=pipe))
    assert len(ds) == 500 and ds[0]['inputs'].shape == (3, 64, 64)
    stamp = (root / 'train_imgs.tsv').stat().st_mtime_ns
    assert ensure_demo_data(str(root)) == str(root)
    assert (root / 'train_imgs.tsv').stat().st_mtime_ns == stamp
