"""Datasets, transforms and the bad-sample and truncation report hooks; importing registers them all."""
from . import transforms  # noqa: F401
from .bad_samples import BadSampleError, BadSampleLog
from .base import BadSampleAwareDataset
from .base_image_text import BaseImageTextDataset
from .cifar import CIFAR100Dataset
from .cifar100_classes import CIFAR100_CHINESE
from .class_caption import ClassCaptionDataset
from .collate import clip_collate
from .demo import DemoImageTextDataset, ensure_demo_data, make_demo_data
from .demo_classes import DemoClassesDataset, ensure_demo_classes, make_demo_classes
from .hooks import BadSampleReportHook
from .image_folder import ImageFolderZeroShotDataset
from .jsonl_dataset import ImageTextJsonlDataset
from .lmdb_dataset import ImageTextLMDBDataset
from .truncation import TruncationLog, TruncationReportHook
from .tsv_dataset import ImageTextTSVDataset
from .webdataset_shards import WebDatasetImageText
from .zero_shot_base import ZeroShotDataset

__all__ = [
    'BadSampleError', 'BadSampleLog', 'BadSampleAwareDataset', 'BaseImageTextDataset',
    'ImageTextTSVDataset', 'ImageTextLMDBDataset', 'ImageTextJsonlDataset', 'CIFAR100Dataset',
    'CIFAR100_CHINESE', 'ImageFolderZeroShotDataset', 'ZeroShotDataset', 'DemoImageTextDataset',
    'ensure_demo_data', 'make_demo_data', 'BadSampleReportHook', 'WebDatasetImageText', 'ClassCaptionDataset',
    'DemoClassesDataset', 'ensure_demo_classes', 'make_demo_classes', 'clip_collate',
    'TruncationLog', 'TruncationReportHook',
]
