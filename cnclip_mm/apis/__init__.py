"""High-level entry points: models by name, load any checkpoint, classify zero-shot, encode images and texts.

Names are imported on first use (module ``__getattr__``), so ``import cnclip_mm.apis`` costs little more
than ``import cnclip_mm``, and optional parts (ONNX Runtime, Gradio) load only when used.
"""
import importlib
from typing import Any

_SOURCES = {
    'init_model': 'cnclip_mm.models.builder',
    'get_model': 'cnclip_mm.models.zoo',
    'load_model': 'cnclip_mm.models.zoo',
    'list_models': 'cnclip_mm.models.zoo',
    'model_info': 'cnclip_mm.models.zoo',
    'register_models': 'cnclip_mm.models.zoo',
    'resolve_weights': 'cnclip_mm.models.zoo',
    'encode_images': 'cnclip_mm.apis.inference',
    'encode_texts': 'cnclip_mm.apis.inference',
    'FeatureExtractor': 'cnclip_mm.apis.inferencers',
    'ImageClassificationInferencer': 'cnclip_mm.apis.inferencers',
    'ImageToImageRetrievalInferencer': 'cnclip_mm.apis.inferencers',
    'ImageToTextRetrievalInferencer': 'cnclip_mm.apis.inferencers',
    'TextToImageRetrievalInferencer': 'cnclip_mm.apis.inferencers',
    'ZeroShotClassificationInferencer': 'cnclip_mm.apis.inferencers',
}

__all__ = list(_SOURCES)


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
