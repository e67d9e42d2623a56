"""High-level entry points: models by name, load any checkpoint, classify zero-shot, encode images and texts."""
from cnclip_mm.models.builder import init_model
from cnclip_mm.models.zoo import (
    get_model,
    list_models,
    model_info,
    register_models,
    resolve_weights,
)

from .inference import encode_images, encode_texts
from .inferencers import (
    FeatureExtractor,
    ImageClassificationInferencer,
    ImageToTextRetrievalInferencer,
    TextToImageRetrievalInferencer,
    ZeroShotClassificationInferencer,
)

__all__ = ['encode_images', 'encode_texts', 'init_model', 'get_model', 'list_models',
           'model_info', 'register_models', 'resolve_weights', 'FeatureExtractor', 'ImageClassificationInferencer',
           'ImageToTextRetrievalInferencer', 'TextToImageRetrievalInferencer', 'ZeroShotClassificationInferencer']
