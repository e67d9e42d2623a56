"""Metrics: retrieval recall and zero-shot accuracy."""
from .retrieval import RetrievalRecall
from .zeroshot import ZeroShotAccuracy

__all__ = ['RetrievalRecall', 'ZeroShotAccuracy']
