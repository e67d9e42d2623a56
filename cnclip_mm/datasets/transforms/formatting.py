"""Packing a pipeline result into ``{'inputs': ..., 'data_samples': DataSample}``."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from cnclip_mm.registry import TRANSFORMS
from cnclip_mm.structures import DataSample

DEFAULT_META_KEYS = ('sample_idx', 'img_path', 'image_id', 'text_id', 'text', 'gt_image_ids',
                     'ori_shape', 'img_shape')


@TRANSFORMS.register_module()
class PackCLIPInputs(BaseTransform):
    """Pack as docs/design.md says: ``inputs`` is a uint8 CHW RGB tensor or None.

    Args:
        meta_keys: Keys copied into the data sample's metainfo when present.

    Required Keys:
        - img (optional, np.uint8 [H, W, 3])
        - text_ids (optional), gt_label (optional), the meta keys present

    Added Keys:
        - inputs (torch.uint8 [3, H, W] or None)
        - data_samples (DataSample)
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        inputs = None
        if img is not None:
            img = np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
            inputs = torch.from_numpy(img)
        sample = DataSample()
        for key in self.meta_keys:  # set_field, not set_metainfo: that deep-copies, and the values
            if key in results:      # are already this item's own (the dataset hands out copies)
                sample.set_field(results[key], key, field_type='metainfo')
        if results.get('text_ids') is not None:
            sample.text_ids = torch.as_tensor(results['text_ids'], dtype=torch.long)
        if results.get('gt_label') is not None:
            sample.set_gt_label(results['gt_label'])
        return {'inputs': inputs, 'data_samples': sample}

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
