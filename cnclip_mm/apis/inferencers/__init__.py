"""Inferencers in mmpretrain's shape: ``Inferencer(model_name, pretrained=True, ...)(inputs)``."""
from .base import BaseInferencer, expand_images
from .gallery import Gallery
from .gallery_search import GallerySearch
from .inferencers import (
    FeatureExtractor,
    ImageToImageRetrievalInferencer,
    ImageToTextRetrievalInferencer,
    TextToImageRetrievalInferencer,
    ZeroShotClassificationInferencer,
)

# mmpretrain's name for the same call
ImageClassificationInferencer = ZeroShotClassificationInferencer

__all__ = ['BaseInferencer', 'expand_images', 'Gallery', 'FeatureExtractor', 'GallerySearch',
           'ImageToImageRetrievalInferencer', 'ImageToTextRetrievalInferencer',
           'TextToImageRetrievalInferencer', 'ZeroShotClassificationInferencer', 'ImageClassificationInferencer']
