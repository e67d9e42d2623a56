"""Evaluation: metrics, the zero-shot class hook, chunked retrieval helpers and prompt templates."""
from .functional import chunked_topk, recall_at_k, retrieval_ranks
from .hooks import ZeroShotClassesHook
from .metrics import RetrievalRecall, ZeroShotAccuracy
from .templates import load_templates

__all__ = ['chunked_topk', 'recall_at_k', 'retrieval_ranks', 'RetrievalRecall', 'ZeroShotAccuracy',
           'ZeroShotClassesHook', 'load_templates']
