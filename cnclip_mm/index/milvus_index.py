"""The same index API on Milvus (extra ``[milvus]``): a Milvus server or cluster by URL, or a Milvus Lite file.

    open_index('http://search-host:19530?collection=photos')   # a Milvus server / cluster (pymilvus)
    open_index('photos.db')                                     # Milvus Lite: the same client, a local file

One collection per index: a string primary key ``id``, a float vector ``vector`` (inner product), and the
index's ``meta`` (model identity included) as JSON in the collection property ``cnclip.meta``. Milvus chooses and builds
the approximate index itself (``AUTOINDEX``); writes are durable without :meth:`MilvusVectorIndex.save`,
which only flushes.
"""
import json
from typing import Dict, Iterable, List, Sequence, Set, Tuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np

from .identity import check_identity

DEFAULT_COLLECTION = 'cnclip_index'
META_PROPERTY = 'cnclip.meta'
MAX_ID_LENGTH = 1024


def is_milvus_uri(path_or_uri: str) -> bool:
    """A Milvus server URL (``http(s)://``, ``tcp://``) or a Milvus Lite file (``*.db``)."""
    return path_or_uri.split('?')[0].endswith('.db') or urlsplit(path_or_uri).scheme in ('http', 'https', 'tcp')


def _client_and_collection(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError as err:
        raise ImportError(f'{uri} is a Milvus index: pip install "cnclip-mm[milvus]"') from err
    parts = urlsplit(uri)
    collection = parse_qs(parts.query).get('collection', [DEFAULT_COLLECTION])[0]
    target = urlunsplit(parts._replace(query='')) if parts.scheme else uri.split('?')[0]
    return MilvusClient(target), collection


class MilvusVectorIndex:
    """:class:`~cnclip_mm.index.VectorIndex`'s API (search / add / delete / get_vectors / meta / check_model)
    on a Milvus collection; see the module docstring."""

    def __init__(self, uri: str, client, collection: str, meta: dict):
        self.path = uri
        self.meta = meta
        self._client = client
        self._collection = collection

    @classmethod
    def create(cls, uri: str, dim: int, model: dict = None, **unused) -> 'MilvusVectorIndex':
        """A new collection for ``dim``-d vectors made by ``model`` (``exact_max`` / ``nprobe``: Milvus decides)."""
        from pymilvus import DataType
        client, collection = _client_and_collection(uri)
        if client.has_collection(collection):
            raise FileExistsError(f'{uri} already holds collection {collection!r}: open it with open_index()')
        meta = dict(format='cnclip-milvus-index/1', engine='milvus', metric='inner_product', dim=int(dim),
                    kind='milvus AUTOINDEX', model=model or {})
        schema = client.create_schema(auto_id=False)
        schema.add_field('id', DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field('vector', DataType.FLOAT_VECTOR, dim=int(dim))
        index_params = client.prepare_index_params()
        index_params.add_index('vector', index_type='AUTOINDEX', metric_type='IP')
        client.create_collection(collection, schema=schema, index_params=index_params, consistency_level='Strong',
                                 properties={META_PROPERTY: json.dumps(meta, ensure_ascii=False)})
        return cls(uri, client, collection, meta)

    @classmethod
    def load(cls, uri: str) -> 'MilvusVectorIndex':
        client, collection = _client_and_collection(uri)
        if not client.has_collection(collection):
            raise FileNotFoundError(f'{uri} has no collection {collection!r}; build one with '
                                    f'tools/index/build_index.py')
        stored = (client.describe_collection(collection).get('properties') or {}).get(META_PROPERTY)
        if stored is None:
            raise ValueError(f'{uri}: collection {collection!r} was not made by cnclip_mm (no {META_PROPERTY!r} '
                             f'property)')
        meta = json.loads(stored)
        client.load_collection(collection)
        return cls(uri, client, collection, meta)

    def save(self) -> None:
        self._client.flush(self._collection)

    @property
    def kind(self) -> str:
        return self.meta['kind']

    def __len__(self) -> int:
        rows = self._client.query(self._collection, filter='', output_fields=['count(*)'])
        return int(rows[0]['count(*)'])

    def __contains__(self, item_id) -> bool:
        return bool(self.existing([item_id]))

    def existing(self, ids: Sequence) -> Set[str]:
        """Which of ``ids`` are in the index (one request)."""
        ids = [str(i) for i in ids]
        return {row['id'] for row in self._client.get(self._collection, ids=ids, output_fields=['id'])} if ids else set()

    @property
    def ids(self) -> List[str]:
        out = []
        iterator = self._client.query_iterator(self._collection, batch_size=1000, filter='', output_fields=['id'])
        while True:
            rows = iterator.next()
            if not rows:
                iterator.close()
                return out
            out += [row['id'] for row in rows]

    def check_model(self, identity: dict) -> None:
        check_identity(self.meta.get('model', {}), identity, f'the index {self.path}')

    def add(self, ids: Sequence, vectors: np.ndarray) -> None:
        """Upsert: an id already present gets the new vector."""
        ids = [str(i) for i in ids]
        vectors = np.asarray(vectors, np.float32).reshape(len(ids), -1)
        if vectors.shape[1] != self.meta['dim']:
            raise ValueError(f'{self.path}: expected vectors of shape [N, {self.meta["dim"]}], got {vectors.shape}')
        if len(set(ids)) != len(ids):
            raise ValueError('add(): the ids of one call must be unique')
        too_long = next((i for i in ids if len(i) > MAX_ID_LENGTH), None)
        if too_long is not None:
            raise ValueError(f'{self.path}: id {too_long[:40]!r}... is longer than {MAX_ID_LENGTH} characters')
        for start in range(0, len(ids), 1000):
            self._client.upsert(self._collection, [dict(id=i, vector=v.tolist()) for i, v in
                                                   zip(ids[start:start + 1000], vectors[start:start + 1000])])

    def delete(self, ids: Iterable) -> int:
        present = self.existing(list(ids))
        if present:
            self._client.delete(self._collection, ids=sorted(present))
        return len(present)

    def search(self, vectors: np.ndarray, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`VectorIndex.search`: ``(ids [Q, k'], scores [Q, k'])``, ``k' = min(k, len)``."""
        queries = np.asarray(vectors, np.float32).reshape(-1, self.meta['dim'])
        k = min(int(k), len(self))
        if k <= 0:
            return np.empty((len(queries), 0), object), np.empty((len(queries), 0), np.float32)
        hits = self._client.search(self._collection, data=queries.tolist(), limit=k, output_fields=[],
                                   search_params=dict(metric_type='IP'))
        ids = np.full((len(queries), k), None, dtype=object)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        for row, found in enumerate(hits):
            for col, hit in enumerate(found):
                ids[row, col], scores[row, col] = hit['id'], hit['distance']
        return ids, scores

    def get_vectors(self, ids: Sequence) -> np.ndarray:
        rows: Dict[str, list] = {r['id']: r['vector'] for r in
                                 self._client.get(self._collection, ids=[str(i) for i in ids],
                                                  output_fields=['vector'])}
        missing = [i for i in ids if str(i) not in rows]
        if missing:
            raise KeyError(f'{self.path}: no vector with id {missing[0]!r}')
        return np.array([rows[str(i)] for i in ids], np.float32)
