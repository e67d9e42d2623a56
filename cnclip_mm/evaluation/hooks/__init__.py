"""Evaluation hooks: the zero-shot classifier builder and the retrieval example renderer."""
from .zeroshot_classes import ZeroShotClassesHook

__all__ = ['ZeroShotClassesHook']
