"""Helpers shared by tools and the runner."""
from .tokenizer_cfg import share_tokenizer

__all__ = ['share_tokenizer']
