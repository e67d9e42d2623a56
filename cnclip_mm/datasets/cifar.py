"""CIFAR-100 test (or train) set from the ``cifar-100-python`` pickles, for zero-shot evaluation."""
import os.path as osp
from typing import List

import numpy as np

from cnclip_mm.registry import DATASETS

from .cifar100_classes import CIFAR100_CHINESE, CIFAR100_ENGLISH
from .safe_pickle import safe_loads
from .zero_shot_base import ZeroShotDataset


@DATASETS.register_module()
class CIFAR100Dataset(ZeroShotDataset):
    """CIFAR-100 with Chinese class names in ``metainfo['classes']``.

    Args:
        data_root: The ``cifar-100-python`` folder or a folder that contains it.
        split: ``'test'`` or ``'train'`` (the pickle file name).
        **kwargs: See :class:`ZeroShotDataset`.
    """

    METAINFO = dict(classes=CIFAR100_CHINESE)

    def __init__(self, data_root: str = 'data/cifar100', split: str = 'test', **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f'CIFAR100Dataset split must be "train" or "test", got {split!r}')
        self.split = split
        self._images = None
        super().__init__(data_root=data_root, **kwargs)

    def _folder(self) -> str:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'CIFAR100Dataset: directory {root!r} does not exist')
        nested = osp.join(root, 'cifar-100-python')
        return nested if osp.isdir(nested) else root

    def _load_pickle(self, folder: str, name: str) -> dict:
        path = osp.join(folder, name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'CIFAR100Dataset: {path!r} missing; expected the cifar-100-python layout '
                '(files train, test, meta) in data_root or data_root/cifar-100-python')
        with open(path, 'rb') as f:
            try:
                obj = safe_loads(f.read(), allow_numpy=True, encoding='latin1')
            except Exception as err:  # noqa: BLE001 - report any unreadable pickle the same way
                raise ValueError(f'CIFAR100Dataset: {path!r} is not a CIFAR pickle: {err}') from err
        if not isinstance(obj, dict):
            raise ValueError(f'CIFAR100Dataset: {path!r} holds {type(obj).__name__}, expected a dict')
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}

    def load_data_list(self) -> List[dict]:
        folder = self._folder()
        meta = self._load_pickle(folder, 'meta')
        names = [n.decode() if isinstance(n, bytes) else n for n in meta.get('fine_label_names', [])]
        if tuple(names) != CIFAR100_ENGLISH:
            raise ValueError(f'CIFAR100Dataset: {osp.join(folder, "meta")} fine_label_names are not the '
                             f'100 CIFAR-100 classes (got {len(names)} names)')
        split = self._load_pickle(folder, self.split)
        path = osp.join(folder, self.split)
        for key in ('data', 'fine_labels'):
            if key not in split:
                raise ValueError(f'CIFAR100Dataset: {path!r} has no {key!r} entry '
                                 f'(keys: {sorted(split)}); is this CIFAR-10 or another file?')
        data = np.asarray(split['data'], dtype=np.uint8)
        labels = [int(x) for x in split['fine_labels']]
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise ValueError(f'CIFAR100Dataset: {path!r} data has shape {data.shape} for '
                             f'{len(labels)} labels; expected [N, 3072]')
        # Rows are channel-planar (R plane, G plane, B plane) 32x32 images.
        self._images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        return [dict(cifar_index=i, gt_label=label) for i, label in enumerate(labels)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        index = info.pop('cifar_index')
        info['img'] = self._images[index]
        info['source'] = f'{osp.join(self._folder(), self.split)} row {index}'
        return info
