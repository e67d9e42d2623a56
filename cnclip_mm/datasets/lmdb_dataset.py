"""The official LMDB layout: ``lmdb/{split}/imgs`` and ``lmdb/{split}/pairs``.

``imgs`` maps the image id string as written in the TSV (e.g. ``"0007"``) to base64 bytes plus
``num_images``; ``pairs`` maps ``str(index)`` to a pickled ``(image_id, text_id, text)`` plus
``num_samples`` (as written by the official ``build_lmdb_dataset.py`` and by ``tools/data/build_lmdb.py``).
Images are looked up by that stored key, so ``"0007"``, ``7`` and ``"7"`` in the texts all find it.
"""
import os.path as osp
from typing import Dict, Iterator, List

from cnclip_mm.registry import DATASETS

from .bad_samples import BadSampleError
from .base_image_text import BaseImageTextDataset, ImageId, TextRecord, parse_image_id, require_path
from .lmdb_env import get_env
from .safe_pickle import safe_loads


@DATASETS.register_module()
class ImageTextLMDBDataset(BaseImageTextDataset):
    """Official LMDB pairs and images under ``{data_root}/{lmdb_dir}/{split}``.

    In test mode the text -> image links come from the pairs (grouped by ``text_id``) and the
    images are listed in numeric key order.

    Args:
        data_root: Dataset folder.
        split: ``train`` / ``valid`` / ``test``.
        lmdb_dir: LMDB folder relative to ``data_root`` (official: ``lmdb``).
        **kwargs: See :class:`BaseImageTextDataset`.
    """

    def __init__(self, data_root: str = '', split: str = 'train', lmdb_dir: str = 'lmdb', **kwargs):
        self.lmdb_dir = lmdb_dir
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _path(self, name: str) -> str:
        return osp.join(self.data_root, self.lmdb_dir, self.split, name)

    def _count(self, txn, key: bytes, path: str) -> int:
        raw = txn.get(key)
        if raw is None or not bytes(raw).isdigit():
            raise ValueError(f'{path}: key {key.decode()!r} missing or not a number ({raw!r}); '
                             'not an LMDB in the official layout')
        return int(raw)

    def _read_images(self) -> Dict[ImageId, dict]:
        path = require_path(self._path('imgs'), f'{type(self).__name__} images LMDB', is_dir=True)
        require_path(self._path('pairs'), f'{type(self).__name__} pairs LMDB', is_dir=True)
        with get_env(path).begin() as txn:
            expected = self._count(txn, b'num_images', path)
            keys: List[str] = [k.decode('utf-8') for k in txn.cursor().iternext(values=False)
                               if k != b'num_images']
        if len(keys) != expected:
            raise ValueError(f'{path}: num_images says {expected} but it holds {len(keys)} images')
        stored: Dict[ImageId, str] = {}
        for key in keys:
            image_id = parse_image_id(key)
            if image_id in stored:
                raise ValueError(f'{path}: keys {stored[image_id]!r} and {key!r} are the same image id '
                                 f'{image_id!r}; keep one of them')
            stored[image_id] = key
        ids = sorted(stored, key=lambda i: (isinstance(i, str), i))
        return {i: dict(lmdb_key=stored[i], source=f'{path} key {stored[i]!r}') for i in ids}

    def _read_texts(self) -> Iterator[TextRecord]:
        path = self._path('pairs')
        grouped: Dict[object, list] = {}
        with get_env(path).begin() as txn:
            num = self._count(txn, b'num_samples', path)
            for index in range(num):
                where = f'{path} key {str(index)!r}'
                raw = txn.get(str(index).encode('utf-8'))
                if raw is None:
                    self.bad_samples.handle(where, f'pair missing (num_samples is {num})')
                    continue
                try:
                    image_id, text_id, text = safe_loads(raw)
                except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad pair
                    self.bad_samples.handle(where, f'not a pickled (image_id, text_id, text): {err}')
                    continue
                if not self.test_mode:  # training: every pair is its own item, as officially
                    yield where, text_id, text, [image_id]
                elif text_id not in grouped:
                    grouped[text_id] = [where, text_id, text, [image_id]]
                elif grouped[text_id][2] != text:
                    self.bad_samples.handle(where, f'text_id {text_id!r} repeats with another text '
                                                   f'({text!r} vs {grouped[text_id][2]!r})')
                else:  # evaluation links each text to all its images
                    grouped[text_id][3].append(image_id)
        for record in grouped.values():
            yield tuple(record)

    def _attach_image(self, info: dict) -> None:
        key = info.pop('lmdb_key')
        with get_env(self._path('imgs')).begin() as txn:
            value = txn.get(key.encode('utf-8'))
        if value is None:
            raise BadSampleError(f'{self._path("imgs")}: image key {key!r} is missing (the LMDB changed '
                                 'since the dataset was loaded?)')
        info['img_b64'] = bytes(value)
