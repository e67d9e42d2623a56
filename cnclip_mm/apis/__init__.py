"""High-level entry points: models by name, load any checkpoint, classify zero-shot, encode images and texts."""
from .inference import ZeroShotClassifier, encode_images, encode_texts
from .inferencers import (
    FeatureExtractor,
    ImageClassificationInferencer,
    ImageToTextRetrievalInferencer,
    TextToImageRetrievalInferencer,
    ZeroShotClassificationInferencer,
)
from .init_model import init_model
from .model_zoo import get_model, list_models, model_info, register_models, resolve_weights

__all__ = ['ZeroShotClassifier', 'encode_images', 'encode_texts', 'init_model', 'get_model', 'list_models',
           'model_info', 'register_models', 'resolve_weights', 'FeatureExtractor', 'ImageClassificationInferencer',
           'ImageToTextRetrievalInferencer', 'TextToImageRetrievalInferencer', 'ZeroShotClassificationInferencer']
