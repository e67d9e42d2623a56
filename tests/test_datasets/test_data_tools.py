"""The data tools' main(argv) entry points."""
import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from data_writers import (
    decode,
    image_bytes,
    lmdb_items,
    make_image,
    write_jsonl_set,
    write_official,
)

from cnclip_mm.registry import DATASETS

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'data'


def tool(name):
    spec = importlib.util.spec_from_file_location(f'data_tool_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_lmdb_tool(tmp_path):
    write_official(tmp_path / 'd', split='train')
    write_official(tmp_path / 'd', split='valid')
    counts = tool('build_lmdb').main(['--data-dir', str(tmp_path / 'd'), '--splits', 'train,valid',
                                      '--lmdb-dir', str(tmp_path / 'out'), '--no-progress'])
    assert counts == {s: dict(num_samples=4, num_images=3) for s in ('train', 'valid')}
    assert lmdb_items(tmp_path / 'out' / 'valid' / 'pairs')[b'num_samples'] == b'4'
    with pytest.raises(FileNotFoundError, match='test_texts.jsonl'):
        tool('build_lmdb').main(['--data-dir', str(tmp_path / 'd'), '--splits', 'test', '--no-progress'])


def test_convert_to_tsv_from_jsonl_and_csv(tmp_path):
    write_jsonl_set(tmp_path / 'src')
    convert = tool('convert_to_tsv')
    counts = convert.main(['--img-dir', str(tmp_path / 'src' / 'images'), '--captions',
                           str(tmp_path / 'src' / 'captions.jsonl'), '--out-dir', str(tmp_path / 'out'),
                           '--first-image-id', '100', '--no-progress'])
    assert counts == dict(num_images=2, num_texts=4)
    texts = [json.loads(x) for x in (tmp_path / 'out' / 'train_texts.jsonl').read_text('utf-8').splitlines()]
    assert [(t['text_id'], t['image_ids']) for t in texts] == [(1, [100]), (2, [101]), (3, [101]), (4, [100])]
    ds = DATASETS.build(dict(type='ImageTextTSVDataset', data_root=str(tmp_path / 'out'),
                             pipeline=[dict(type='LoadImage'), dict(type='PackCLIPInputs')]))
    assert np.array_equal(ds[0]['inputs'].permute(1, 2, 0).numpy(), decode(make_image(1)))

    with open(tmp_path / 'src' / 'caps.csv', 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'caption'])
        writer.writerow(['a.png', '猫, 在睡觉'])
    counts = convert.main(['--img-dir', str(tmp_path / 'src' / 'images'), '--captions',
                           str(tmp_path / 'src' / 'caps.csv'), '--out-dir', str(tmp_path / 'csv'),
                           '--split', 'valid', '--no-progress'])
    assert counts == dict(num_images=1, num_texts=1)
    assert '猫, 在睡觉' in (tmp_path / 'csv' / 'valid_texts.jsonl').read_text('utf-8')

    (tmp_path / 'src' / 'images' / 'a.png').write_bytes(b'broken')
    with pytest.raises(ValueError, match=r'caps\.csv line 2: image .*a\.png.* unreadable'):
        convert.main(['--img-dir', str(tmp_path / 'src' / 'images'), '--captions',
                      str(tmp_path / 'src' / 'caps.csv'), '--out-dir', str(tmp_path / 'x'), '--no-progress'])


def test_check_dataset_reports_counts_broken_and_lengths(tmp_path, vocab_file, capsys):
    images = image_bytes()
    images[3] = b'not an image'
    write_official(tmp_path / 'd', images=images, texts=[(11, '一只猫在睡觉', [1]), (12, '两只小狗', [2, 3]),
                                                         (13, '缺图', [9])])
    cfg = tmp_path / 'cfg.py'
    tok = dict(type='ChineseTokenizer', vocab_file=vocab_file, context_length=16)
    pipe = [dict(type='LoadImage'), dict(type='CleanCaption'), dict(type='TokenizeText', tokenizer=tok),
            dict(type='PackCLIPInputs')]
    cfg.write_text(f'train_dataloader = dict(dataset=dict(type="ImageTextTSVDataset", '
                   f'data_root={str(tmp_path / "d")!r}, pipeline={pipe!r}))\n', encoding='utf-8')
    reports = tool('check_dataset').main([str(cfg), '--no-progress'])
    r = reports['train_dataloader']
    assert r['dataset_items'] == 3 and r['items'] == 2 and r['skipped_at_load'] == 1
    assert len(r['broken']) == 1 and r['broken'][0][0] == 2 and 'line 3 (image_id 3)' in r['broken'][0][1]
    assert r['caption_chars'] == dict(min=4, mean=5.0, p95=6, max=6)
    assert r['caption_tokens'] == dict(min=6, mean=7.0, p95=8, max=8)
    out = capsys.readouterr().out
    assert 'broken items: 1' in out and 'image_id 9 has no image' in out
    assert r['unk_share'] == 0.0 and 'WARNING' not in out


def test_check_dataset_warns_about_unk_heavy_captions(tmp_path, capsys):
    """Captions outside the vocab become [UNK]: the share is reported and warned about."""
    write_official(tmp_path / 'd', texts=[(11, '一只猫', [1]), (12, 'ꙮꙮ猫', [2])])
    vocab = tmp_path / 'vocab.txt'  # a tiny vocab: the specials and 猫 only
    vocab.write_text('\n'.join(['[PAD]'] + [f'[unused{i}]' for i in range(99)] + ['[UNK]', '[CLS]', '[SEP]', '猫'])
                     + '\n', encoding='utf-8')
    cfg = tmp_path / 'cfg.py'
    pipe = [dict(type='LoadImage'), dict(type='CleanCaption'), dict(type='TokenizeText'), dict(type='PackCLIPInputs')]
    cfg.write_text(f'tokenizer = dict(vocab_file={str(vocab)!r}, context_length=16)\n'
                   f'train_dataloader = dict(dataset=dict(type="ImageTextTSVDataset", '
                   f'data_root={str(tmp_path / "d")!r}, pipeline={pipe!r}))\n', encoding='utf-8')
    r = tool('check_dataset').main([str(cfg), '--no-progress'])['train_dataloader']
    assert r['unk_share'] == pytest.approx(3 / 5)  # 一 只 猫 | ꙮꙮ (one word: one [UNK]) 猫
    out = capsys.readouterr().out
    assert '[UNK] share of caption tokens: 60.00%' in out and 'WARNING: 60% of the caption tokens are [UNK]' in out


def test_make_demo_data_tool(tmp_path):
    root = tool('make_demo_data').main(['--root', str(tmp_path / 'demo')])
    assert (Path(root) / 'vocab.txt').is_file() and (Path(root) / 'train_imgs.tsv').is_file()


def test_convert_to_tsv_names_the_bad_caption_line(tmp_path):
    write_jsonl_set(tmp_path / 'src')
    convert = tool('convert_to_tsv')
    bad = tmp_path / 'bad.jsonl'
    for lines, pattern in ((['{"image": "a.png", "caption": "猫"}', '{"image": "a.png", "capt'],
                            r'bad\.jsonl line 2: malformed JSON'),
                           (['{"image": "a.png"}'], r'bad\.jsonl line 1: need .*got keys \[\'image\'\]')):
        bad.write_text('\n'.join(lines) + '\n', encoding='utf-8')
        with pytest.raises(ValueError, match=pattern):
            convert.main(['--img-dir', str(tmp_path / 'src' / 'images'), '--captions', str(bad),
                          '--out-dir', str(tmp_path / 'out'), '--no-progress'])
