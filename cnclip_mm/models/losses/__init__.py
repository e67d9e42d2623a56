"""Losses working on features (registered in ``MODELS``)."""
from .context import batch_context, total_loss
from .contrastive import ContrastiveLoss, gather_features
from .distillation import DistillationLoss
from .positives import positive_keys
from .siglip import SigLipLoss

__all__ = ['ContrastiveLoss', 'DistillationLoss', 'batch_context', 'gather_features', 'positive_keys',
           'SigLipLoss', 'total_loss']
