"""Visualisation: CJK font lookup and retrieval example pictures."""
from .fonts import cjk_font_properties, find_cjk_font
from .retrieval import render_retrieval_example

__all__ = ['cjk_font_properties', 'find_cjk_font', 'render_retrieval_example']
