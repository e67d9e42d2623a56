"""The one data-sample type that flows from the pipeline through the model to the metrics."""
from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement


class DataSample(BaseDataElement):
    """Per-sample annotations and predictions.

    Metainfo (set by the dataset / packing): ``sample_idx``, ``img_path``, ``image_id``, ``text_id``,
    ``text`` (raw caption), ``gt_image_ids`` (list of image ids a text is paired with), ``label_index``
    (the class index as a host int, set with ``gt_label``: losses read it without a device sync).

    Data fields: ``text_ids`` (LongTensor [L]), ``gt_label`` (LongTensor [1]); predictions written by
    the model: ``image_feat`` / ``text_feat`` (Tensor [D], L2-normalised), ``pred_score`` (Tensor [C]),
    ``pred_label`` (LongTensor [1]).
    """

    def set_gt_label(self, value: Union[int, np.integer, torch.Tensor, Sequence[int]]) -> 'DataSample':
        """Store a class index as a LongTensor of shape [1] (and, for one index, ``label_index``)."""
        self.gt_label = _as_label(value)
        if self.gt_label.numel() == 1:
            self.set_metainfo(dict(label_index=int(self.gt_label[0])))
        return self

    @property
    def has_text(self) -> bool:
        return 'text_ids' in self


def _as_label(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.reshape(-1).long()
    if isinstance(value, (int, np.integer)):
        return torch.tensor([int(value)], dtype=torch.long)
    return torch.as_tensor(list(value), dtype=torch.long).reshape(-1)
