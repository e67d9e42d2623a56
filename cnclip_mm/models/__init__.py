"""Models: importing this package registers every model component."""
from . import converters  # noqa: F401  (registers weight initializers)
from .backbones import *  # noqa: F401,F403
from .chinese_clip import ChineseCLIP
from .data_preprocessor import CLIPDataPreprocessor
from .losses import *  # noqa: F401,F403
from .text_encoders import *  # noqa: F401,F403
from .tokenizer import ChineseTokenizer

__all__ = ['ChineseCLIP', 'CLIPDataPreprocessor', 'ChineseTokenizer']
