"""Optimizer constructors and wrappers."""
from .autocast_wrapper import AutocastOptimWrapper
from .clip_constructor import CLIPOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'CLIPOptimWrapperConstructor']
