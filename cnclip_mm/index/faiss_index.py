"""A vector index of L2-normalised features on faiss (inner product = cosine), stored in a folder.

Exact search (``IDMap2,Flat``) up to ``exact_max`` vectors; past it the vectors move once into an
inverted-file index (``IVF{nlist},Flat``, k-means trained on them) searched over ``nprobe`` lists. Both
support adding and removing by id. Ids are strings (file paths, TSV image ids), mapped to faiss' int64 keys.

Folder layout: ``CURRENT`` names the live version folder (``v000007/``: ``index.faiss``, ``keys.npy``,
``ids.npy``, ``meta.json``). :meth:`VectorIndex.save` writes a new version, then swaps ``CURRENT`` with one
``os.replace``, so a process killed at any moment leaves the previous or the new version, never a mix.
"""
import json
import logging
import math
import os
import os.path as osp
import shutil
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from .identity import check_identity

logger = logging.getLogger(__name__)

EXACT_MAX = 50_000  # past this many vectors the index turns approximate (IVF)
FORMAT = 'cnclip-faiss-index/1'


def _faiss():
    try:
        import faiss
    except ImportError as err:  # the optional extra
        raise ImportError('the vector index needs faiss: pip install "cnclip-mm[index]"') from err
    return faiss


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: 4 sqrt(n) (faiss' guideline range), at least 1."""
    return max(1, int(4 * math.sqrt(n)))


def default_nprobe(nlist: int) -> int:
    """Lists probed per query: 1/16 of them, at least 16 (recall@10 >= 0.95 on 100k CLIP-like vectors,
    benchmarks/index_engines.py)."""
    return min(nlist, max(16, nlist // 16))


class VectorIndex:
    """Search, add and delete L2-normalised vectors by string id; see the module docstring for storage.

    Open one with :func:`cnclip_mm.index.open_index`, create one with :meth:`create`.

    Attributes:
        path: the index folder.
        meta: ``model`` (see :func:`~cnclip_mm.index.model_identity`), ``dim``, ``kind`` (``'exact'`` or
            ``'ivf'``), ``nlist`` / ``nprobe`` (IVF), ``exact_max``, ``engine``.
    """

    def __init__(self, path: str, index, keys: np.ndarray, ids: Sequence[str], meta: dict):
        self.path = path
        self.meta = meta
        self._index = index
        self._key_of: Dict[str, int] = {str(i): int(k) for i, k in zip(ids, keys)}
        self._id_of: Dict[int, str] = {k: i for i, k in self._key_of.items()}
        self._apply_nprobe()

    # -- creation and persistence ------------------------------------------------------------------

    @classmethod
    def create(cls, path: str, dim: int, model: Optional[dict] = None, exact_max: int = EXACT_MAX,
               nprobe: Optional[int] = None) -> 'VectorIndex':
        """An empty exact index for ``dim``-d vectors at ``path`` (written by the first :meth:`save`).

        Args:
            path: the index folder (must not hold an index yet).
            dim: vector size.
            model: identity of the model whose features go in (:func:`~cnclip_mm.index.model_identity`).
            exact_max: vectors up to which search stays exact.
            nprobe: IVF lists probed per query once approximate (default :func:`default_nprobe`).
        """
        if osp.isfile(osp.join(path, 'CURRENT')):
            raise FileExistsError(f'{path} already holds an index: open it with open_index()')
        faiss = _faiss()
        meta = dict(format=FORMAT, engine=f'faiss {faiss.__version__}', metric='inner_product', dim=int(dim),
                    kind='exact', exact_max=int(exact_max), nlist=None, nprobe=nprobe, next_key=0,
                    model=model or {})
        return cls(path, faiss.index_factory(int(dim), 'IDMap2,Flat', faiss.METRIC_INNER_PRODUCT),
                   np.empty(0, np.int64), [], meta)

    @classmethod
    def load(cls, path: str) -> 'VectorIndex':
        """Open the index saved in folder ``path``."""
        current = osp.join(path, 'CURRENT')
        if not osp.isfile(current):
            raise FileNotFoundError(f'{path} holds no index (no CURRENT file); build one with '
                                    f'tools/index/build_index.py')
        with open(current) as f:
            version = osp.join(path, f.read().strip())
        with open(osp.join(version, 'meta.json'), encoding='utf-8') as f:
            meta = json.load(f)
        if meta.get('format') != FORMAT:
            raise ValueError(f'{version}/meta.json: format {meta.get("format")!r}, expected {FORMAT!r}')
        index = _faiss().read_index(osp.join(version, 'index.faiss'))
        keys = np.load(osp.join(version, 'keys.npy'), allow_pickle=False)
        ids = np.load(osp.join(version, 'ids.npy'), allow_pickle=False).tolist()
        if len(keys) != len(ids) or len(keys) != index.ntotal:
            raise ValueError(f'{version}: {index.ntotal} vectors but {len(keys)} keys and {len(ids)} ids')
        return cls(path, index, keys, ids, meta)

    def save(self) -> str:
        """Write a new version folder and make it current atomically; older versions are removed.

        Returns:
            The version folder written.
        """
        os.makedirs(self.path, exist_ok=True)
        old = self._current_version()
        number = int(old[1:]) + 1 if old else 0
        name = f'v{number:06d}'
        folder = osp.join(self.path, name)
        shutil.rmtree(folder, ignore_errors=True)  # a half-written one from a killed save
        os.makedirs(folder)
        _faiss().write_index(self._index, osp.join(folder, 'index.faiss'))
        ids = list(self._key_of)
        np.save(osp.join(folder, 'keys.npy'), np.array([self._key_of[i] for i in ids], np.int64))
        np.save(osp.join(folder, 'ids.npy'), np.array(ids, dtype=str) if ids else np.empty(0, '<U1'))
        with open(osp.join(folder, 'meta.json'), 'w', encoding='utf-8') as f:
            json.dump(self.meta, f, ensure_ascii=False, indent=1)
        tmp = osp.join(self.path, 'CURRENT.tmp')
        with open(tmp, 'w') as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, osp.join(self.path, 'CURRENT'))
        for entry in os.listdir(self.path):
            if entry.startswith('v') and entry != name and osp.isdir(osp.join(self.path, entry)):
                shutil.rmtree(osp.join(self.path, entry), ignore_errors=True)
        return folder

    def _current_version(self) -> Optional[str]:
        current = osp.join(self.path, 'CURRENT')
        if not osp.isfile(current):
            return None
        with open(current) as f:
            return f.read().strip()

    # -- contents ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._key_of)

    def __contains__(self, item_id) -> bool:
        return str(item_id) in self._key_of

    def existing(self, ids: Sequence) -> Set[str]:
        """Which of ``ids`` are in the index."""
        return {str(i) for i in ids if str(i) in self._key_of}

    @property
    def ids(self) -> List[str]:
        """Every id in the index (insertion order)."""
        return list(self._key_of)

    @property
    def kind(self) -> str:
        return self.meta['kind']

    def check_model(self, identity: dict) -> None:
        """Raise :class:`~cnclip_mm.index.ModelMismatchError` unless ``identity`` made this index."""
        check_identity(self.meta.get('model', {}), identity, f'the index {self.path}')

    def add(self, ids: Sequence, vectors: np.ndarray) -> None:
        """Add vectors under ``ids``; an id already present is replaced (its old vector removed).

        Crossing ``exact_max`` turns the index approximate (IVF, logged).
        """
        ids = [str(i) for i in ids]
        vectors = self._as_matrix(vectors, len(ids))
        if len(set(ids)) != len(ids):
            raise ValueError('add(): the ids of one call must be unique')
        self.delete([i for i in ids if i in self._key_of])
        start = self.meta['next_key']
        keys = np.arange(start, start + len(ids), dtype=np.int64)
        self.meta['next_key'] = start + len(ids)
        if self.kind == 'exact' and len(self) + len(ids) > self.meta['exact_max']:
            self._to_ivf(vectors, keys)
        else:
            self._index.add_with_ids(vectors, keys)
        for item_id, key in zip(ids, keys.tolist()):
            self._key_of[item_id] = key
            self._id_of[key] = item_id

    def delete(self, ids: Iterable) -> int:
        """Remove the vectors of ``ids`` (unknown ids are ignored); returns how many were removed."""
        keys = [self._key_of.pop(str(i)) for i in ids if str(i) in self._key_of]
        if keys:
            faiss = _faiss()
            array = np.array(keys, np.int64)  # IDSelectorArray: what the IVF direct map can remove by
            removed = self._index.remove_ids(faiss.IDSelectorArray(len(array), faiss.swig_ptr(array)))
            if removed != len(keys):
                raise RuntimeError(f'{self.path}: faiss removed {removed} of {len(keys)} vectors')
            for key in keys:
                del self._id_of[key]
        return len(keys)

    def search(self, vectors: np.ndarray, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar vectors (inner product) to each query row.

        Returns:
            ``(ids, scores)``, both ``[Q, min(k, len(self))]``, best first: ids as an object array of
            strings (``None`` where an approximate search found fewer than ``k``), scores float32
            (``-inf`` there).
        """
        k = min(int(k), len(self))
        queries = self._as_matrix(vectors, None)
        if k <= 0:
            return np.empty((len(queries), 0), object), np.empty((len(queries), 0), np.float32)
        scores, keys = self._index.search(queries, k)
        ids = np.array([[self._id_of.get(int(key)) for key in row] for row in keys], dtype=object)
        scores = np.where(keys < 0, -np.inf, scores).astype(np.float32)
        return ids, scores

    def get_vectors(self, ids: Sequence) -> np.ndarray:
        """The stored vectors ``[N, dim]`` of ``ids`` (KeyError naming an id that is not in the index)."""
        missing = [i for i in ids if str(i) not in self._key_of]
        if missing:
            raise KeyError(f'{self.path}: no vector with id {missing[0]!r}')
        out = np.empty((len(ids), self.meta['dim']), np.float32)
        for row, item_id in enumerate(ids):
            out[row] = self._index.reconstruct(self._key_of[str(item_id)])
        return out

    def set_nprobe(self, nprobe: int) -> None:
        """IVF lists probed per query (more: higher recall, slower); stored by the next :meth:`save`."""
        self.meta['nprobe'] = int(nprobe)
        self._apply_nprobe()

    # -- internals ---------------------------------------------------------------------------------

    def _as_matrix(self, vectors, rows: Optional[int]) -> np.ndarray:
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if matrix.ndim == 1:
            matrix = matrix[None]
        if matrix.ndim != 2 or matrix.shape[1] != self.meta['dim']:
            raise ValueError(f'{self.path}: expected vectors of shape [N, {self.meta["dim"]}], '
                             f'got {tuple(matrix.shape)}')
        if rows is not None and len(matrix) != rows:
            raise ValueError(f'{rows} ids for {len(matrix)} vectors')
        return matrix

    def _apply_nprobe(self) -> None:
        if self.meta['kind'] == 'ivf':
            _faiss().extract_index_ivf(self._index).nprobe = int(self.meta['nprobe'])

    def _to_ivf(self, new_vectors: np.ndarray, new_keys: np.ndarray) -> None:
        """Move every vector (present + new) into an IVF index trained on them."""
        faiss = _faiss()
        flat = self._index
        old_keys = faiss.vector_to_array(flat.id_map).astype(np.int64)
        old = flat.index.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.empty((0, self.meta['dim']),
                                                                                      np.float32)
        vectors = np.concatenate([old, new_vectors])
        keys = np.concatenate([old_keys, new_keys])
        nlist = default_nlist(len(vectors))
        nprobe = self.meta['nprobe'] or default_nprobe(nlist)
        logger.info('%s: %d vectors > exact_max=%d: switching from exact search to approximate IVF '
                       '(nlist=%d, nprobe=%d)', self.path, len(vectors), self.meta['exact_max'], nlist, nprobe)
        index = faiss.index_factory(self.meta['dim'], f'IVF{nlist},Flat', faiss.METRIC_INNER_PRODUCT)
        train = vectors
        if len(vectors) > 64 * nlist:  # k-means needs a sample, not all (faiss warns below 39 per list)
            train = vectors[np.random.default_rng(0).choice(len(vectors), 64 * nlist, replace=False)]
        index.train(train)
        faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Hashtable)  # get_vectors by id
        index.add_with_ids(vectors, keys)
        self._index = index
        self.meta.update(kind='ivf', nlist=nlist, nprobe=nprobe)
        self._apply_nprobe()
