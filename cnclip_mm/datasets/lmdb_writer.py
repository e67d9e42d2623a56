"""Write the official LMDB layout (``lmdb/{split}/imgs`` and ``pairs``) from TSV/jsonl files.

Byte-compatible with the official ``build_lmdb_dataset.py``: image keys ``str(image_id)`` hold
the base64 text as UTF-8, ``num_images`` their count; pair keys ``str(index)`` hold
``pickle.dumps((image_id, text_id, text))``, ``num_samples`` their count.
"""
import json
import os
import os.path as osp
import pickle
from typing import Dict, Iterable

import lmdb

from .lmdb_env import release_env
from .progress import count_lines, progress

_COMMIT_EVERY = 1000


def _put_all(path: str, items: Iterable, count_key: bytes) -> int:
    os.makedirs(path, exist_ok=True)
    release_env(path)
    env = lmdb.open(path, map_size=1 << 40)
    try:
        txn = env.begin(write=True)
        count = 0
        for key, value in items:
            txn.put(key, value)
            count += 1
            if count % _COMMIT_EVERY == 0:
                txn.commit()
                txn = env.begin(write=True)
        txn.put(count_key, str(count).encode('utf-8'))
        txn.commit()
    finally:
        env.close()
    return count


def _pairs(path: str, bar):
    index = 0
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            bar.update()
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                image_ids, text_id, text = obj['image_ids'], obj['text_id'], obj['text']
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f'{path} line {lineno}: need a JSON object with text_id, text, '
                                 f'image_ids ({type(err).__name__}: {err})') from err
            if not isinstance(image_ids, list):
                raise ValueError(f'{path} line {lineno}: image_ids must be a list, got {image_ids!r}')
            for image_id in image_ids:
                yield str(index).encode('utf-8'), pickle.dumps((image_id, text_id, text))
                index += 1


def _images(path: str, bar):
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            bar.update()
            line = line.strip()
            if not line:
                continue
            parts = line.split('\t')
            if len(parts) != 2:
                raise ValueError(f'{path} line {lineno}: expected "image_id<TAB>base64"')
            yield parts[0].encode('utf-8'), parts[1].encode('utf-8')


def build_lmdb(data_dir: str, splits: Iterable[str], lmdb_dir: str = None,
               show_progress: bool = True) -> Dict[str, Dict[str, int]]:
    """Convert ``{split}_imgs.tsv`` + ``{split}_texts.jsonl`` of each split.

    Args:
        data_dir: Folder with the TSV/jsonl files.
        splits: Split names, e.g. ``['train', 'valid', 'test']``.
        lmdb_dir: Output folder (default ``{data_dir}/lmdb``); an existing split is overwritten.
        show_progress: Show progress bars.

    Returns:
        ``{split: {'num_samples': pairs, 'num_images': images}}``.
    """
    if not osp.isdir(data_dir):
        raise FileNotFoundError(f'build_lmdb: data directory {data_dir!r} does not exist')
    lmdb_dir = lmdb_dir or osp.join(data_dir, 'lmdb')
    counts = {}
    for split in splits:
        texts = osp.join(data_dir, f'{split}_texts.jsonl')
        imgs = osp.join(data_dir, f'{split}_imgs.tsv')
        for path in (texts, imgs):
            if not osp.isfile(path):
                raise FileNotFoundError(f'build_lmdb: {path!r} does not exist (split {split!r})')
        out = osp.join(lmdb_dir, split)
        for name in ('imgs', 'pairs'):  # overwrite: stale keys must not survive
            for fname in ('data.mdb', 'lock.mdb'):
                if osp.isfile(osp.join(out, name, fname)):
                    os.remove(osp.join(out, name, fname))
        with progress(count_lines(texts), f'{split} pairs', show_progress) as bar:
            num_pairs = _put_all(osp.join(out, 'pairs'), _pairs(texts, bar), b'num_samples')
        with progress(count_lines(imgs), f'{split} images', show_progress) as bar:
            num_images = _put_all(osp.join(out, 'imgs'), _images(imgs, bar), b'num_images')
        counts[split] = dict(num_samples=num_pairs, num_images=num_images)
    return counts
