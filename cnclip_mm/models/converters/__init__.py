"""Checkpoint interoperability: official / Hugging Face / mmpretrain / own formats, and stage-1 initialisers."""
from .convert import convert_checkpoint
from .files import read_weights, safe_torch_load
from .hf import hf_to_mm, mm_to_hf
from .hf_export import build_hf_config, export_hf
from .infer import infer_model_cfg
from .initializers import ChineseCLIPCheckpointInit, OpenAICLIPVisualInit, load_openai_visual
from .loading import (
    CheckpointMismatchError,
    compare_state_dict,
    convert_to_mm,
    detect_format,
    is_own_checkpoint,
    load_checkpoint,
    load_state_dict_any,
    load_state_dict_into,
)
from .mmpretrain import mm_to_mmpretrain, mmpretrain_to_mm
from .official import mm_to_official, official_to_mm

__all__ = [
    'convert_checkpoint', 'read_weights', 'safe_torch_load', 'hf_to_mm', 'mm_to_hf', 'build_hf_config',
    'export_hf', 'infer_model_cfg',
    'CheckpointMismatchError', 'compare_state_dict', 'convert_to_mm', 'detect_format', 'is_own_checkpoint', 'load_checkpoint',
    'load_state_dict_any', 'load_state_dict_into', 'mm_to_mmpretrain', 'mmpretrain_to_mm', 'mm_to_official',
    'official_to_mm', 'OpenAICLIPVisualInit', 'ChineseCLIPCheckpointInit', 'load_openai_visual',
]
