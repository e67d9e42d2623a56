from .modified_resnet import ModifiedResNet
from .vit import CLIPVisionTransformer

__all__ = ['CLIPVisionTransformer', 'ModifiedResNet']
