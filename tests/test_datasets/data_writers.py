"""Writers of tiny datasets in the real formats, shared by the dataset tests."""
import base64
import io
import json
import os
import pickle
from pathlib import Path
from typing import Dict, List, Sequence

import lmdb
import numpy as np
from PIL import Image


def make_image(seed: int, size=(23, 17), fmt: str = 'PNG') -> bytes:
    """Random RGB noise image encoded as real PNG/JPEG bytes."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))


# Three images; text 11 -> image 1, text 12 -> images 1 and 2, text 13 -> image 3.
IMAGES = {1: ('PNG', (23, 17)), 2: ('JPEG', (40, 30)), 3: ('PNG', (16, 16))}
TEXTS = [(11, '一只猫在睡觉', [1]), (12, '两只小狗', [1, 2]), (13, '红色的汽车', [3])]


def image_bytes() -> Dict[int, bytes]:
    return {i: make_image(i, size, fmt) for i, (fmt, size) in IMAGES.items()}


def write_official(root: Path, split: str = 'train', images: Dict[int, bytes] = None,
                   texts: Sequence = TEXTS, tsv_lines: List[str] = None,
                   jsonl_lines: List[str] = None) -> Path:
    """``{split}_imgs.tsv`` (url-safe base64, as official) + ``{split}_texts.jsonl``."""
    root.mkdir(parents=True, exist_ok=True)
    images = image_bytes() if images is None else images
    if tsv_lines is None:
        tsv_lines = [f'{i}\t{base64.urlsafe_b64encode(b).decode()}' for i, b in images.items()]
    if jsonl_lines is None:
        jsonl_lines = [json.dumps(dict(text_id=t, text=x, image_ids=ids), ensure_ascii=False)
                       for t, x, ids in texts]
    (root / f'{split}_imgs.tsv').write_text('\n'.join(tsv_lines) + '\n', encoding='utf-8')
    (root / f'{split}_texts.jsonl').write_text('\n'.join(jsonl_lines) + '\n', encoding='utf-8')
    return root


def write_official_lmdb(root: Path, split: str = 'train', images: Dict[int, bytes] = None,
                        texts: Sequence = TEXTS) -> Path:
    """The official LMDB layout written directly with ``lmdb`` (as build_lmdb_dataset.py does)."""
    images = image_bytes() if images is None else images
    base = root / 'lmdb' / split
    os.makedirs(base / 'imgs', exist_ok=True)
    os.makedirs(base / 'pairs', exist_ok=True)
    env = lmdb.open(str(base / 'pairs'), map_size=1 << 30)
    with env.begin(write=True) as txn:
        index = 0
        for text_id, text, ids in texts:
            for image_id in ids:
                txn.put(str(index).encode('utf-8'), pickle.dumps((image_id, text_id, text)))
                index += 1
        txn.put(b'num_samples', str(index).encode('utf-8'))
    env.close()
    env = lmdb.open(str(base / 'imgs'), map_size=1 << 30)
    with env.begin(write=True) as txn:
        for image_id, data in images.items():
            txn.put(str(image_id).encode('utf-8'), base64.urlsafe_b64encode(data))
        txn.put(b'num_images', str(len(images)).encode('utf-8'))
    env.close()
    return root


def lmdb_items(path: Path) -> Dict[bytes, bytes]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = {bytes(k): bytes(v) for k, v in txn.cursor()}
    env.close()
    return items


def write_jsonl_set(root: Path) -> Path:
    """``images/`` + ``captions.jsonl`` with a caption string and a caption list."""
    (root / 'images' / 'sub').mkdir(parents=True, exist_ok=True)
    (root / 'images' / 'a.png').write_bytes(make_image(1))
    (root / 'images' / 'sub' / 'b.jpg').write_bytes(make_image(2, fmt='JPEG'))
    lines = [dict(image='a.png', caption='一只猫'), dict(image='sub/b.jpg', caption=['小狗', '一只小狗在跑']),
             dict(image='a.png', caption='猫在睡觉')]
    (root / 'captions.jsonl').write_text(
        ''.join(json.dumps(x, ensure_ascii=False) + '\n' for x in lines), encoding='utf-8')
    return root


def write_cifar(root: Path, n: int = 6, names=None) -> Path:
    """A cifar-100-python folder with python-2 style bytes keys."""
    from cnclip_mm.datasets.cifar100_classes import CIFAR100_ENGLISH
    folder = root / 'cifar-100-python'
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in ('train', 'test'):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 100, size=n)]
        with open(folder / split, 'wb') as f:
            pickle.dump({b'data': data, b'fine_labels': labels, b'coarse_labels': [0] * n}, f, protocol=2)
    with open(folder / 'meta', 'wb') as f:
        pickle.dump({b'fine_label_names': [s.encode() for s in (names or CIFAR100_ENGLISH)]}, f, protocol=2)
    return root


def pipeline(size: int = 8, vocab_file: str = None, context_length: int = 8) -> list:
    steps = [dict(type='LoadImage'), dict(type='ResizeExact', scale=size), dict(type='CleanCaption')]
    if vocab_file:
        steps.append(dict(type='TokenizeText', tokenizer=dict(type='ChineseTokenizer', vocab_file=vocab_file,
                                                              context_length=context_length)))
    return steps + [dict(type='PackCLIPInputs')]
