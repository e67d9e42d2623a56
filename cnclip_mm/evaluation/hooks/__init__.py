"""Evaluation hooks: the zero-shot classifier builder and the example pictures of --show-dir."""
from .retrieval_vis import RetrievalVisualizationHook
from .zeroshot_classes import ZeroShotClassesHook
from .zeroshot_vis import ZeroShotVisualizationHook

__all__ = ['RetrievalVisualizationHook', 'ZeroShotClassesHook', 'ZeroShotVisualizationHook']
