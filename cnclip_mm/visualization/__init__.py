"""Visualisation: the CJK font, retrieval and zero-shot example pictures."""
from .files import numbered_paths
from .fonts import cjk_font_properties, find_cjk_font
from .retrieval import render_retrieval_example, render_zeroshot_examples

__all__ = ['cjk_font_properties', 'find_cjk_font', 'numbered_paths', 'render_retrieval_example',
           'render_zeroshot_examples']
