from .bert import ChineseBertEncoder

__all__ = ['ChineseBertEncoder']
