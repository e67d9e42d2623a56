"""Load a model with its adapters from a checkpoint (adapters-only or full) and write it merged, in this
project's, the official or the Hugging Face format (``tools/model_converters/merge_adapters.py``)."""

import copy
import os
from typing import Optional, Union

import torch
from mmengine.config import Config
from torch import nn

from ..builder import init_model
from ..converters import export_hf, load_state_dict_any, load_state_dict_into, mm_to_official
from ..converters.files import read_weights
from ..converters.loading import convert_to_mm, detect_format
from ..converters.stored_config import plain_model_cfg, stored_model_cfg
from .lora import merge_adapters

FORMATS = ('mm', 'official', 'hf')


def load_adapted_model(
    checkpoint: str,
    base: Optional[str] = None,
    config: Union[str, Config, dict, None] = None,
    vocab_file: Optional[str] = None,
) -> nn.Module:
    """A ``ChineseCLIP`` with adapters, its base weights and the adapters of ``checkpoint``, in eval mode.

    Args:
        checkpoint: a checkpoint of a run with ``model.adapters``: adapters-only (``AdapterCheckpointHook``)
            or full.
        base: base weights (any supported format) under an adapters-only checkpoint; default: the file its
            ``meta['adapter_base']`` names.
        config: the config of the run (default: the model config stored in ``checkpoint``).
        vocab_file: vocabulary of the tokenizer (file, folder or hub name).

    Raises:
        ValueError: the config has no ``adapters`` block, or no base is known for adapters-only weights.
        CheckpointMismatchError: base or adapters do not fit the model.
    """
    raw, extra = read_weights(checkpoint)
    meta = extra.get('meta') or {}
    state = convert_to_mm(raw, detect_format(raw))
    model_cfg = (
        _model_cfg(config) if config is not None else stored_model_cfg(meta, source=str(checkpoint))
    )
    if not model_cfg or not model_cfg.get('adapters'):
        raise ValueError(
            f'{checkpoint}: its model config has no "adapters" block (pass --config of the run)'
        )
    if not meta.get('adapters_only'):
        return init_model(model_cfg, checkpoint, vocab_file=vocab_file)
    base = base or meta.get('adapter_base')
    if not base:
        raise ValueError(f'{checkpoint} holds adapters only and names no base weights: pass --base')
    base_state, _, _ = load_state_dict_any(base)
    model = init_model(
        model_cfg, base, vocab_file=vocab_file, strict=False
    )  # the adapters come next
    load_state_dict_into(
        model, {**base_state, **state}, strict=True, source=f'{checkpoint} on {base}'
    )
    return model.eval()


def save_merged(model: nn.Module, out: str, fmt: str = 'mm') -> str:
    """Fold ``model``'s adapters into its weights and write it.

    Args:
        model: a ``ChineseCLIP`` with adapters (from :func:`load_adapted_model`); merged in place.
        out: ``.pth`` (``'mm'``), ``.pt`` (``'official'``: ``{'state_dict': {'module.visual....'}}``) or a
            folder (``'hf'``: ``ChineseCLIPModel.from_pretrained`` loads it).
        fmt: one of ``'mm'``, ``'official'``, ``'hf'``.

    Returns:
        ``out``.
    """
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; choose from {list(FORMATS)}')
    merge_adapters(model)
    model.adapters = None
    if fmt == 'hf':
        return export_hf(model, out)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if fmt == 'official':
        torch.save(
            dict(epoch=0, step=0, name='merged_adapters', state_dict=mm_to_official(state)), out
        )
        return out
    model_cfg = copy.deepcopy(plain_model_cfg(getattr(model, 'cfg', None)) or {})
    model_cfg.pop('adapters', None)
    torch.save(
        dict(state_dict=state, meta=dict(model_cfg=model_cfg or None, merged_adapters=True)), out
    )
    return out


def _model_cfg(config) -> dict:
    if isinstance(config, str):
        config = Config.fromfile(config)
    if isinstance(config, Config):
        config = config.to_dict()
    return copy.deepcopy(config.get('model', config))
