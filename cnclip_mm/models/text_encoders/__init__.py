from .bert import ChineseBertEncoder
from .padding import trim_padding

__all__ = ['ChineseBertEncoder', 'trim_padding']
