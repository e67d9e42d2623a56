"""An image gallery for retrieval (folder, list, official TSV) and its feature cache file.

The cache key is a fingerprint of the model's weights, the backend and every gallery item (path, size
and modification time; the bytes of in-memory images; the TSV file's path, size and mtime), so a changed
gallery or model recomputes the features and an unchanged one loads them.
"""
import functools
import hashlib
import io
import os
import os.path as osp
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from cnclip_mm.datasets.transforms.loading import decode_base64
from cnclip_mm.utils.download import cache_dir

from .base import expand_images


class Gallery:
    """Images to search, each with an id (file path relative to the folder, TSV image id, or list index).

    Args:
        source: a folder, a ``*_imgs.tsv`` file (``image_id<TAB>base64``), a glob, or a list of paths /
            PIL images / arrays.
    """

    def __init__(self, source: Union[str, os.PathLike, Sequence[Any]]):
        self.source = source
        if isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith('.tsv'):
            self.ids, self.items = _read_tsv(os.fspath(source))
        else:
            self.items = expand_images(source)
            root = os.fspath(source) if isinstance(source, (str, os.PathLike)) and osp.isdir(source) else None
            self.ids = [osp.relpath(item, root) if root and isinstance(item, str) else
                        (os.fspath(item) if isinstance(item, (str, os.PathLike)) else i)
                        for i, item in enumerate(self.items)]
        if not self.items:
            raise ValueError(f'the gallery {source!r} is empty')

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        if isinstance(self.source, (str, os.PathLike)) and os.fspath(self.source).endswith('.tsv'):
            st = os.stat(self.source)
            digest.update(f'{osp.abspath(self.source)}|{st.st_size}|{st.st_mtime_ns}'.encode())
            return digest.hexdigest()
        for item in self.items:
            if isinstance(item, (str, os.PathLike)):
                st = os.stat(item)
                digest.update(f'{osp.abspath(item)}|{st.st_size}|{st.st_mtime_ns}\n'.encode())
            else:
                digest.update(np.ascontiguousarray(np.asarray(item)).tobytes())
        return digest.hexdigest()

    def features(self, compute: Callable[[List[Any]], torch.Tensor], model_key: str,
                 cache_file: Optional[str] = None) -> Tuple[torch.Tensor, bool]:
        """The gallery's features from ``cache_file`` when its key matches, else computed and saved.

        Returns:
            ``(features [N, D], loaded_from_cache)``.
        """
        key = hashlib.sha256(f'{model_key}|{self.fingerprint()}'.encode()).hexdigest()
        path = cache_file or str(cache_dir() / 'gallery' / f'{key[:24]}.npz')
        if osp.isfile(path):
            with np.load(path, allow_pickle=False) as stored:
                if str(stored['key']) == key:
                    return torch.from_numpy(stored['feats']), True
        feats = compute(self.items)
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = f'{path}.tmp.npz'
        np.savez(tmp, feats=feats.numpy(), key=np.array(key))
        os.replace(tmp, path)
        return feats, False


def _read_tsv(path: str) -> Tuple[List[str], List[Image.Image]]:
    records = list(iter_tsv(path))
    return [image_id for image_id, _ in records], [decode() for _, decode in records]


def iter_tsv(path: str) -> Iterator[Tuple[str, Callable[[], Image.Image]]]:
    """``(image_id, decode)`` per line of an official ``image_id<TAB>base64`` file, read lazily;
    ``decode()`` gives the RGB image (ValueError naming file and line when it does not decode)."""
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip('\n').split('\t')
            if len(parts) != 2:
                raise ValueError(f'{path}:{lineno}: expected "image_id<TAB>base64", got {len(parts)} fields')
            yield parts[0], functools.partial(_decode_tsv_image, parts[1], f'{path}:{lineno}', parts[0])


def _decode_tsv_image(data: str, where: str, image_id: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(decode_base64(data))).convert('RGB')
    except Exception as err:
        raise ValueError(f'{where}: image {image_id!r} does not decode: {err}') from err


def model_key(model: torch.nn.Module, backend: str) -> str:
    """A cheap fingerprint of the weights (per-tensor sums and shapes) and the backend."""
    digest = hashlib.sha256(backend.encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(f'{name}{tuple(tensor.shape)}{float(tensor.double().sum()):.10e}'.encode())
    return digest.hexdigest()
