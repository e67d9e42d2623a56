"""One loader for every checkpoint format; the format is told apart by its keys.

Formats: ``'official'`` (OFA-Sys Chinese-CLIP ``.pt``), ``'hf'`` (transformers ``ChineseCLIPModel``),
``'mmpretrain'`` (mmpretrain ``ChineseCLIP``) and ``'mm'`` (this project's own, see docs/design.md).
"""
import os
import zipfile
from typing import Dict, Iterable, List, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from ..adapters.lora import is_adapter_key
from .files import is_torchscript, read_weights, safe_torch_load, unwrap
from .hf import hf_to_mm
from .mmpretrain import mmpretrain_to_mm
from .official import DDP_PREFIX, LOSS_PREFIX, official_to_mm, strip_prefix

StateDict = Dict[str, torch.Tensor]

TO_MM = {
    'mm': lambda sd: sd,
    'official': official_to_mm,
    'hf': hf_to_mm,
    'mmpretrain': mmpretrain_to_mm,
}
# Keys a checkpoint may lack without harm: BatchNorm counters are not used in eval or with momentum set.
OPTIONAL_SUFFIXES = ('num_batches_tracked', )
# Position tables are resized on load by the towers themselves (another input resolution).
RESIZABLE_SUFFIXES = ('positional_embedding', )
MAX_LISTED = 20


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not match the model; the message lists the offending keys."""


def detect_format(keys: Iterable[str]) -> str:
    """Tell the checkpoint format from its key names.

    Raises:
        ValueError: when no known layout matches (the message shows a few keys).
    """
    keys = [k[len(DDP_PREFIX):] if k.startswith(DDP_PREFIX) else k for k in keys]

    def has(*prefixes: str) -> bool:
        return any(k.startswith(prefixes) for k in keys)

    if has('image_encoder.', 'text_encoder.'):
        return 'mm'
    if has('vision_model.', 'text_model.', 'visual_projection.'):
        return 'hf'
    if has('vision_backbone.', 'text_backbone.'):
        return 'mmpretrain'
    if has('visual.', 'bert.'):
        return 'official'
    raise ValueError('unknown checkpoint layout: expected keys starting with image_encoder./text_encoder. (own), '
                     'visual./bert. (official), vision_model./text_model. (Hugging Face) or vision_backbone./'
                     f'text_backbone. (mmpretrain); found e.g. {sorted(keys)[:8]}')


def convert_to_mm(state_dict: StateDict, fmt: str) -> StateDict:
    """Map a state dict of format ``fmt`` to this project's layout."""
    if fmt not in TO_MM:
        raise ValueError(f'unknown checkpoint format {fmt!r}; choose from {sorted(TO_MM)}')
    return TO_MM[fmt](strip_prefix(state_dict))


def load_state_dict_any(path: str) -> Tuple[StateDict, str, dict]:
    """Load a checkpoint of any supported format into this project's layout.

    Args:
        path: an official ``.pt``, a Hugging Face folder / ``.safetensors`` / ``.bin``, an mmpretrain ``.pth`` or
            one of this project's checkpoints.

    Returns:
        ``(state_dict, fmt, extra)``: the state dict with our key names, the detected format, and extra
        information (``hf_config``, ``vocab_file``, ``meta``, ``checkpoint``, ``path``).
    """
    raw, extra = read_weights(path)
    try:
        fmt = detect_format(raw)
    except ValueError as err:
        raise ValueError(f'{path}: {err}') from None
    extra['path'] = os.fspath(path)
    return with_adapter_base(convert_to_mm(raw, fmt), extra), fmt, extra


def with_adapter_base(state_dict: StateDict, extra: dict) -> StateDict:
    """An adapters-only checkpoint (``meta['adapters_only']``, ``AdapterCheckpointHook``) completed with the
    base weights its ``meta['adapter_base']`` names; any other state dict as it is."""
    meta = extra.get('meta') or {}
    if not meta.get('adapters_only'):
        return state_dict
    base = meta.get('adapter_base')
    if not base or not os.path.exists(base):
        raise FileNotFoundError(f'{extra.get("path")}: an adapters-only checkpoint whose base weights '
                                f'(meta.adapter_base) {base!r} are not found; merge it onto the base with '
                                'tools/model_converters/merge_adapters.py --base BASE')
    base_state, _, _ = load_state_dict_any(base)
    return {**base_state, **state_dict}


def is_own_checkpoint(path: str) -> bool:
    """Whether ``path`` is one of this project's (mmengine, zip-format) checkpoints.

    Judged by its key names with the tensors memory-mapped, so a multi-GB checkpoint is not read
    just to learn its format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path) or is_torchscript(path):
        return False
    state_dict, _ = unwrap(safe_torch_load(path, mmap=True), path)
    return detect_format(state_dict) == 'mm'


def compare_state_dict(model: nn.Module, state_dict: StateDict) -> Tuple[List[str], List[str], List[str]]:
    """Keys the checkpoint lacks, keys the model lacks, and ``key: ckpt shape vs model shape`` mismatches.

    A checkpoint without any adapter key is base weights under a model with fresh adapters (LoRA starts
    as the identity): its adapters are not missing.
    """
    own = model.state_dict()
    fresh_adapters = not any(is_adapter_key(k) for k in state_dict)
    missing = [k for k in own if k not in state_dict and not k.endswith(OPTIONAL_SUFFIXES)
               and not (fresh_adapters and is_adapter_key(k))]
    # A loss's own training state (SigLipLoss's logit_bias) is not model weights: a checkpoint without it
    # (official, HF, softmax-trained) leaves the loss its initial value; one with it loads into any loss.
    missing = [k for k in missing if not k.startswith(LOSS_PREFIX)]
    unexpected = [k for k in state_dict if k not in own and not k.startswith(LOSS_PREFIX)]
    mismatched = []
    for key, value in state_dict.items():
        if key in own and value.shape != own[key].shape and not _resizable(key, value, own[key]):
            mismatched.append(f'{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}')
    return missing, unexpected, mismatched


def _resizable(key: str, value: torch.Tensor, target: torch.Tensor) -> bool:
    return key.endswith(RESIZABLE_SUFFIXES) and value.dim() == target.dim() == 2 and value.shape[1] == target.shape[1]


def _listing(title: str, items: List[str]) -> str:
    more = f' ... and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else ''
    return f'{title} ({len(items)}): ' + ', '.join(items[:MAX_LISTED]) + more


def load_state_dict_into(model: nn.Module, state_dict: StateDict, strict: bool = True,
                         source: str = 'checkpoint') -> None:
    """Load our-layout ``state_dict`` into ``model``, reporting every missing / unexpected / mis-shaped key.

    Raises:
        CheckpointMismatchError: when ``strict`` and anything does not match.
    """
    missing, unexpected, mismatched = compare_state_dict(model, state_dict)
    problems = [_listing(title, items) for title, items in (
        ('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', mismatched)) if items]
    if problems and strict:
        raise CheckpointMismatchError(f'{source} does not match the model:\n  ' + '\n  '.join(problems))
    bad = set(unexpected) | {m.split(':', 1)[0] for m in mismatched}
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in bad}, strict=False)
    if problems:
        print_log(f'{source} loaded non-strictly:\n  ' + '\n  '.join(problems), logger='current', level=30)


def load_checkpoint(model: nn.Module, path: str, strict: bool = True) -> str:
    """Load a checkpoint of any supported format into ``model``; returns the detected format.

    Sets ``model.dataset_meta`` when the checkpoint's mmengine meta carries one.
    """
    state_dict, fmt, extra = load_state_dict_any(path)
    load_state_dict_into(model, state_dict, strict=strict, source=f'{path} ({fmt} format)')
    dataset_meta = (extra.get('meta') or {}).get('dataset_meta')
    if dataset_meta:
        model.dataset_meta = dataset_meta
    return fmt
