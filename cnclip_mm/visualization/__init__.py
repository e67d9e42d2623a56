"""Visualisation: CJK font lookup, retrieval and zero-shot example pictures."""
from .fonts import cjk_font_properties, find_cjk_font
from .retrieval import render_retrieval_example, render_zeroshot_examples

__all__ = ['cjk_font_properties', 'find_cjk_font', 'render_retrieval_example', 'render_zeroshot_examples']
