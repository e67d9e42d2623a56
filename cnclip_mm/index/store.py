"""Open or create an index by where it lives: a folder (faiss, in-process) or a Milvus URL / Lite file."""
import os.path as osp
from typing import Optional, Union

from .faiss_index import EXACT_MAX, VectorIndex
from .milvus_index import MilvusVectorIndex, is_milvus_uri

AnyIndex = Union[VectorIndex, MilvusVectorIndex]


def open_index(path_or_uri: str) -> AnyIndex:
    """The index at ``path_or_uri``: a folder (:class:`VectorIndex`), or ``http(s)://host:19530?collection=NAME``
    / ``file.db`` (:class:`MilvusVectorIndex`), each with the same search / add / delete / meta API."""
    if is_milvus_uri(path_or_uri):
        return MilvusVectorIndex.load(path_or_uri)
    return VectorIndex.load(path_or_uri)


def index_exists(path_or_uri: str) -> bool:
    if is_milvus_uri(path_or_uri):
        from .milvus_index import _client_and_collection
        client, collection = _client_and_collection(path_or_uri)
        return client.has_collection(collection)
    return osp.isfile(osp.join(path_or_uri, 'CURRENT'))


def create_index(path_or_uri: str, dim: int, model: Optional[dict] = None, exact_max: int = EXACT_MAX,
                 nprobe: Optional[int] = None) -> AnyIndex:
    """A new empty index (``exact_max`` / ``nprobe``: the faiss folder's; Milvus chooses its own)."""
    cls = MilvusVectorIndex if is_milvus_uri(path_or_uri) else VectorIndex
    return cls.create(path_or_uri, dim, model, exact_max=exact_max, nprobe=nprobe)
