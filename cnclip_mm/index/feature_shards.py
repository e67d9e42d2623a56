"""Feature shards: the image features of WebDataset shards, one ``.npz`` per input shard, for big galleries.

Each rank of a distributed run (tools/analysis/extract_features.py under torchrun) encodes the input shards
``rank::world_size`` of the sorted list and writes ``{position:05d}-{name}.npz`` with ``ids`` (strings),
``feats`` (float32 ``[N, D]``, L2-normalised) and ``model`` (the identity JSON) -- plain arrays, no pickle.
A shard already written is skipped, so a killed run resumes. Rank 0 then keeps the first occurrence of an
image id repeated across shards (an image with several captions may span two), so the union of the files
is the same set with one process or many, every id once; ``manifest.json`` lists the files and counts.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np

MANIFEST = 'manifest.json'


def shard_output(position: int, url: str) -> str:
    """File name of the features of the input shard at ``position`` of the sorted list."""
    name = osp.basename(url)
    return f'{position:05d}-{name[:-4] if name.endswith(".tar") else name}.npz'


def write_feature_shard(path: str, ids: Sequence[str], feats: np.ndarray, identity: dict) -> None:
    """Write one shard atomically (temporary file, then ``os.replace``)."""
    tmp = f'{path}.partial'  # not *.npz: a killed write is never read as a shard
    with open(tmp, 'wb') as f:
        np.savez(f, ids=np.array([str(i) for i in ids], dtype=str) if len(ids) else np.empty(0, '<U1'),
                 feats=np.asarray(feats, np.float32), model=np.array(json.dumps(identity, sort_keys=True)))
    os.replace(tmp, path)


def read_feature_shard(path: str) -> Tuple[List[str], np.ndarray, dict]:
    """``(ids, feats [N, D] float32, model identity)`` of one shard."""
    with np.load(path, allow_pickle=False) as shard:
        missing = {'ids', 'feats', 'model'} - set(shard.files)
        if missing:
            raise ValueError(f'{path}: not a feature shard, missing {sorted(missing)}')
        ids, feats, model = shard['ids'].tolist(), shard['feats'].astype(np.float32), json.loads(str(shard['model']))
    if feats.ndim != 2 or len(feats) != len(ids):
        raise ValueError(f'{path}: {len(ids)} ids for feats of shape {feats.shape}')
    return [str(i) for i in ids], feats, model


def extract_shards(image_features, identity: dict, urls: Sequence[str], out_dir: str, rank: int = 0,
                   world_size: int = 1, batch_size: int = 32, progress: bool = True) -> List[str]:
    """Encode this rank's input shards into ``out_dir``; returns the files it wrote (skipped ones excluded).

    Args:
        image_features: list of images -> ``[N, D]`` features (e.g. a ``FeatureExtractor``'s).
        identity: the model identity stored in each shard (:func:`~cnclip_mm.index.model_identity`).
        urls: every input shard of the run (all ranks pass the same list).
        out_dir: where the ``.npz`` files go.
        rank, world_size: this process's part.
        batch_size: images per forward pass.
        progress: a progress bar per rank.
    """
    from tqdm import tqdm

    from .sources import shard_images
    os.makedirs(out_dir, exist_ok=True)
    urls = sorted(urls)
    written = []
    mine = list(enumerate(urls))[rank::world_size]
    for position, url in tqdm(mine, desc=f'rank {rank} shards', unit='shard', disable=not progress):
        path = osp.join(out_dir, shard_output(position, url))
        if osp.isfile(path):
            continue
        ids, loads, feats = [], [], []
        for image_id, load in shard_images([url]):
            ids.append(image_id)
            loads.append(load)
            if len(loads) == batch_size:
                feats.append(image_features([f() for f in loads]).numpy())
                loads.clear()
        if loads:
            feats.append(image_features([f() for f in loads]).numpy())
        dim = int(identity['embed_dim'])
        write_feature_shard(path, ids, np.concatenate(feats) if feats else np.empty((0, dim), np.float32), identity)
        written.append(path)
    return written


def finalize(urls: Sequence[str], out_dir: str) -> Dict[str, int]:
    """Rank 0, after every rank finished: drop ids already in an earlier shard, write ``manifest.json``.

    Returns:
        Feature file name -> number of vectors.
    """
    counts, seen, dropped = {}, set(), 0
    for position, url in enumerate(sorted(urls)):
        name = shard_output(position, url)
        path = osp.join(out_dir, name)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} is missing: the rank that owns {url} did not finish')
        ids, feats, identity = read_feature_shard(path)
        fresh = np.array([i not in seen for i in ids], bool)
        if not fresh.all():
            dropped += int((~fresh).sum())
            ids = [i for i, keep in zip(ids, fresh) if keep]
            write_feature_shard(path, ids, feats[fresh], identity)
        seen.update(ids)
        counts[name] = len(ids)
    with open(osp.join(out_dir, MANIFEST), 'w', encoding='utf-8') as f:
        json.dump(dict(shards=counts, vectors=sum(counts.values()), duplicates_dropped=dropped), f, indent=1)
    return counts
