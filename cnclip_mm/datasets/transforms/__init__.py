"""Pipeline transforms; importing this package registers them in cnclip_mm TRANSFORMS."""
from .augment import RandAugment
from .fast_loading import LoadRandomResizedCrop, LoadResizeImage
from .formatting import PackCLIPInputs
from .loading import LoadImage
from .processing import RandomResizedCrop, ResizeExact
from .text import CleanCaption, TokenizeText

__all__ = ['LoadImage', 'LoadResizeImage', 'LoadRandomResizedCrop', 'ResizeExact', 'RandomResizedCrop', 'RandAugment',
           'CleanCaption', 'TokenizeText', 'PackCLIPInputs']
