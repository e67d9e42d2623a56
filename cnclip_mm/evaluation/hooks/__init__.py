"""Evaluation hooks: the zero-shot classifier builder and the retrieval example renderer."""
from .retrieval_vis import RetrievalVisualizationHook
from .zeroshot_classes import ZeroShotClassesHook

__all__ = ['RetrievalVisualizationHook', 'ZeroShotClassesHook']
