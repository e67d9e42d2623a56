"""Where the retrieval inferencers look up images: a vector index, or brute force over a gallery's features.

An index (:mod:`cnclip_mm.index`, built by tools/index/build_index.py) scales to millions of images and
must have been made by the inferencer's model; a gallery without an index is encoded once (cached, see
:class:`Gallery`) and searched by a matrix product. With both, the index searches and the gallery supplies
the pictures (by id).
"""
import os
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch

from .gallery import Gallery, model_key


class GallerySearch:
    """Top-k gallery images of query features.

    Args:
        image_features: encodes a list of images to ``[N, D]`` features (the inferencer's).
        model: the inferencer's model (its fingerprint keys the feature cache and is checked against the index).
        backend: the feature backend's name (part of the cache key).
        gallery: folder / TSV / glob / list of images (see :class:`Gallery`), or None with an index.
        index: an index folder / Milvus URL, or an open index (:func:`cnclip_mm.index.open_index`).
        cache_file: where brute-force gallery features are cached.
    """

    def __init__(self, image_features: Callable[[List[Any]], torch.Tensor], model: torch.nn.Module, backend: str,
                 gallery: Any = None, index: Any = None, cache_file: Optional[str] = None) -> None:
        if gallery is None and index is None:
            raise ValueError('retrieval needs a gallery (folder, TSV or list of images) or an index folder')
        self.gallery = Gallery(gallery) if gallery is not None else None
        self.index = None
        self.feats: Optional[torch.Tensor] = None
        self.from_cache = None
        if index is not None:
            from cnclip_mm.index.identity import model_identity
            from cnclip_mm.index.store import open_index
            self.index = open_index(os.fspath(index)) if isinstance(index, (str, os.PathLike)) else index
            self.index.check_model(model_identity(model))
            self._position = {str(i): p for p, i in enumerate(self.gallery.ids)} if self.gallery else {}
        else:
            self.feats, self.from_cache = self.gallery.features(
                image_features, model_key(model, backend), cache_file)

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.gallery)

    def topk(self, feats: torch.Tensor, k: int) -> Tuple[torch.Tensor, List[list], List[list]]:
        """``(scores [Q, k'], ids per query, gallery positions per query (None where unknown))``, best first."""
        if self.index is None:
            scores, indices = (feats @ self.feats.T).topk(min(k, len(self.gallery)), dim=1)
            rows = indices.tolist()
            return scores, [[self.gallery.ids[i] for i in row] for row in rows], rows
        ids, scores = self.index.search(feats.numpy(), k)
        found = ids != None  # noqa: E711 (element-wise: an IVF search may find fewer than k)
        keep = int(found.all(axis=0).sum()) if len(ids) else 0
        ids, scores = ids[:, :keep].tolist(), torch.from_numpy(np.ascontiguousarray(scores[:, :keep]))
        return scores, ids, [[self._position.get(i) for i in row] for row in ids]

    def item(self, match: dict) -> Any:
        """The gallery image of a match (None when only an index is known)."""
        return None if match.get('index') is None else self.gallery.items[match['index']]
