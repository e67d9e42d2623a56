"""Losses working on features (registered in ``MODELS``)."""
from .contrastive import ContrastiveLoss, gather_features

__all__ = ['ContrastiveLoss', 'gather_features']
