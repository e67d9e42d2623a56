"""High-level entry points: load any checkpoint, classify zero-shot, encode images and texts."""
from .inference import ZeroShotClassifier, encode_images, encode_texts
from .init_model import init_model

__all__ = ['ZeroShotClassifier', 'encode_images', 'encode_texts', 'init_model']
