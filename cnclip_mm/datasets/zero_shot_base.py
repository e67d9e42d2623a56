"""Base of the zero-shot classification datasets: image items with ``gt_label``."""
from typing import Sequence

from .base import BadSampleAwareDataset


class ZeroShotDataset(BadSampleAwareDataset):
    """Items carry an image (``img`` or ``img_path``) and ``gt_label``; ``metainfo['classes']``
    holds the Chinese class names the model builds its classifier from."""

    @property
    def classes(self) -> Sequence[str]:
        return self.metainfo['classes']
