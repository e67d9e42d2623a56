"""Build or extend an index from a gallery: encode what is not indexed yet, save every few batches.

Resumable by construction: ids already in the index are skipped before their images are even decoded,
and the index is saved atomically (:meth:`VectorIndex.save`) every ``save_every`` images, so a build
killed at any point continues where its last save left off.
"""
import logging
from typing import Any, Iterable, Optional

import numpy as np
from torch import nn

from .faiss_index import EXACT_MAX
from .feature_shards import read_feature_shard
from .identity import check_identity, model_identity
from .sources import GallerySource, feature_shards, image_items
from .store import AnyIndex, create_index, index_exists, open_index

logger = logging.getLogger(__name__)


def open_or_create(path: str, dim: int, identity: dict, exact_max: int = EXACT_MAX,
                   nprobe: Optional[int] = None) -> AnyIndex:
    """The index at ``path`` (a folder or a Milvus URL / file; refusing another model's), or a new empty one."""
    if index_exists(path):
        index = open_index(path)
        index.check_model(identity)
        return index
    index = create_index(path, dim, identity, exact_max=exact_max, nprobe=nprobe)
    logger.info('%s: new index, %s', path, f'exact search up to {exact_max} vectors, approximate (IVF) beyond'
                if index.kind == 'exact' else f'{index.kind} (Milvus chooses the index)')
    return index


def build_index(model: Optional[nn.Module], gallery: GallerySource, out: str, source: Optional[str] = None,
                batch_size: int = 32, save_every: int = 1024, exact_max: int = EXACT_MAX,
                nprobe: Optional[int] = None, delete: Iterable = (), backend: str = 'pytorch',
                progress: bool = True, **backend_kwargs: Any) -> AnyIndex:
    """Add a gallery's images (or feature shards) to the index at ``out``, creating it if needed.

    Args:
        model: the ``ChineseCLIP`` that encodes the images (feature shards: checked against theirs;
            ``None``: ``gallery`` must be feature shards).
        gallery: folder / glob / ``*_imgs.tsv`` / WebDataset ``.tar`` shards / list of images, or ``.npz``
            feature shards from tools/analysis/extract_features.py (see :mod:`cnclip_mm.index.sources`).
        out: the index folder, or a Milvus URL / Lite file (see :func:`~cnclip_mm.index.open_index`).
        source: the model's name or checkpoint path, recorded in the index.
        batch_size: images per forward pass.
        save_every: images between saves (what a killed build can lose).
        exact_max: vectors up to which search stays exact (a new index only).
        nprobe: IVF lists probed per query once approximate (default: ``nlist / 16``, at least 16).
        delete: ids to remove first.
        backend: ``'pytorch'`` or ``'onnxruntime'`` (as the inferencers).
        progress: show a progress bar.
        backend_kwargs: ``onnx_dir``, ``cpu_speed`` (see :class:`~cnclip_mm.apis.FeatureExtractor`).

    Returns:
        The saved index.
    """
    from tqdm import tqdm
    shards = feature_shards(gallery)
    if shards:
        identity = model_identity(model, source) if model is not None else None
        return _add_feature_shards(shards, out, identity, exact_max, nprobe, delete, progress)
    if model is None:
        raise ValueError(f'{gallery!r} is not a set of .npz feature shards: images need a model to encode them')
    from cnclip_mm.apis.inferencers import FeatureExtractor
    extractor = FeatureExtractor(model, backend=backend, batch_size=batch_size, **backend_kwargs)
    identity = model_identity(model, source)
    index = open_or_create(out, int(model.embed_dim), identity, exact_max, nprobe)
    removed = index.delete(delete)
    items, count = image_items(gallery)
    bar = tqdm(total=count if count >= 0 else None, desc='indexing', unit='img', disable=not progress)
    chunk = []
    added = skipped = unsaved = 0

    def encode_new():
        """Add the chunk's items the index lacks (decoded only now); save every ``save_every``."""
        nonlocal added, skipped, unsaved
        present = index.existing([item_id for item_id, _ in chunk])
        todo = [(item_id, load) for item_id, load in chunk if item_id not in present]
        if todo:
            feats = extractor.image_features([load() for _, load in todo], batch_size)
            index.add([item_id for item_id, _ in todo], feats.numpy())
        added, skipped, unsaved = added + len(todo), skipped + len(present), unsaved + len(todo)
        bar.update(len(chunk))
        chunk.clear()
        if unsaved >= save_every:
            index.save()
            unsaved = 0

    seen = set()
    for item_id, load in items:
        if item_id in seen:
            raise ValueError(f'{gallery!r}: id {item_id!r} occurs twice; gallery ids must be unique')
        seen.add(item_id)
        chunk.append((item_id, load))
        if len(chunk) == batch_size:
            encode_new()
    if chunk:
        encode_new()
    bar.close()
    index.save()
    logger.info('%s: %d added, %d already indexed (skipped), %d deleted; %d vectors, %s search%s',
                out, added, skipped, removed, len(index), index.kind, _ivf_settings(index))
    return index


def _add_feature_shards(shards, out, model, exact_max, nprobe, delete, progress) -> AnyIndex:
    from tqdm import tqdm
    index = None
    removed = added = 0
    for path in tqdm(shards, desc='feature shards', unit='shard', disable=not progress):
        ids, feats, identity = read_feature_shard(path)
        if model is not None:
            check_identity(identity, model, f'the feature shard {path}')
        if index is None:
            index = open_or_create(out, feats.shape[1], identity, exact_max, nprobe)
            removed = index.delete(delete)
        else:
            check_identity(index.meta['model'], identity, f'the index {out} (adding {path})')
        present = index.existing(ids)
        new = np.array([i not in present for i in ids], bool)
        index.add([i for i, keep in zip(ids, new) if keep], feats[new])
        added += int(new.sum())
        index.save()
    logger.info('%s: %d added from %d feature shards, %d deleted; %d vectors, %s search%s',
                out, added, len(shards), removed, len(index), index.kind, _ivf_settings(index))
    return index


def _ivf_settings(index) -> str:
    return f' (nlist={index.meta["nlist"]}, nprobe={index.meta["nprobe"]})' if index.kind == 'ivf' else ''
