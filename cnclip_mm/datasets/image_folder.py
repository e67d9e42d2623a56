"""ELEVATER-style zero-shot folder: ``{split}/{class_index:03d}/*.jpg`` and ``label_cn.txt``."""
import os
import os.path as osp
from typing import List

from cnclip_mm.registry import DATASETS

from .zero_shot_base import ZeroShotDataset

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.gif', '.tif', '.tiff')


@DATASETS.register_module()
class ImageFolderZeroShotDataset(ZeroShotDataset):
    """Images in class folders named by the class index, Chinese names one per line.

    Args:
        data_root: Dataset folder.
        split: Sub-folder holding the class folders (ELEVATER: ``test``).
        label_file: Class-name file relative to ``data_root``.
        **kwargs: See :class:`ZeroShotDataset`.
    """

    def __init__(self, data_root: str = '', split: str = 'test', label_file: str = 'label_cn.txt',
                 **kwargs):
        self.split = split
        self.label_file = label_file
        classes = self._read_classes(osp.join(data_root, label_file))
        metainfo = {'classes': classes, **(kwargs.pop('metainfo', None) or {})}
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    @staticmethod
    def _read_classes(path: str) -> List[str]:
        if not osp.isfile(path):
            raise FileNotFoundError(f'ImageFolderZeroShotDataset: class-name file {path!r} does not exist')
        with open(path, encoding='utf-8') as f:
            names = [line.strip() for line in f]
        while names and not names[-1]:
            names.pop()
        for lineno, name in enumerate(names, 1):
            if not name:
                raise ValueError(f'{path} line {lineno}: empty class name')
        if not names:
            raise ValueError(f'{path}: no class names')
        return names

    def load_data_list(self) -> List[dict]:
        folder = osp.join(self.data_root, self.split)
        if not osp.isdir(folder):
            raise FileNotFoundError(f'ImageFolderZeroShotDataset: directory {folder!r} does not exist')
        num_classes = len(self.metainfo['classes'])
        data_list = []
        for entry in sorted(os.listdir(folder)):
            class_dir = osp.join(folder, entry)
            if not osp.isdir(class_dir):
                continue
            if not entry.isdigit() or int(entry) >= num_classes:
                raise ValueError(f'{class_dir}: class folders must be indices 0..{num_classes - 1} '
                                 f'(as in label_cn.txt), got {entry!r}')
            for name in sorted(os.listdir(class_dir)):
                if name.lower().endswith(IMG_EXTENSIONS):
                    path = osp.join(class_dir, name)
                    data_list.append(dict(img_path=path, gt_label=int(entry), source=path))
        if not data_list:
            raise ValueError(f'ImageFolderZeroShotDataset: no images under {folder!r}')
        return data_list
