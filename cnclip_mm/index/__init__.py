"""Vector index of gallery features on faiss (extra ``[index]``): exact search for small galleries,
IVF beyond ``exact_max`` vectors, add / delete by id, the maker model recorded and checked. The same API
reaches a Milvus server / cluster by URL, or a Milvus Lite file (extra ``[milvus]``).

    index = build_index(model, 'photos/', 'photos.index', source='cn-clip_vit-b-16')
    ids, scores = open_index('photos.index').search(text_feats.numpy(), k=10)
"""
from .build import build_index, open_or_create
from .faiss_index import EXACT_MAX, VectorIndex, default_nlist, default_nprobe
from .identity import ModelMismatchError, check_identity, model_identity
from .milvus_index import MilvusVectorIndex
from .store import create_index, open_index

__all__ = ['EXACT_MAX', 'MilvusVectorIndex', 'ModelMismatchError', 'VectorIndex', 'build_index', 'check_identity',
           'create_index', 'default_nlist', 'default_nprobe', 'model_identity', 'open_index', 'open_or_create']
