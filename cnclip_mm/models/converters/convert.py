"""File-to-file conversion into this project's checkpoint format (what the converter tools call)."""
import os
from typing import Optional

import torch

from .infer import infer_model_cfg
from .loading import load_state_dict_any
from .stored_config import is_plain


def convert_checkpoint(src: str, dst: str, expect: Optional[str] = None) -> str:
    """Convert ``src`` (any supported format) to an mmengine-style checkpoint at ``dst``.

    The result is ``{'state_dict': ..., 'meta': {'model_cfg': <model config as a plain dict>, 'source': ..., 'source_format':
    ...}}``; the stored config keeps what the shapes cannot tell (head counts from HF's config.json, the
    vocabulary folder), so ``init_model(checkpoint=dst)`` rebuilds the same model.

    Args:
        src: the source checkpoint file or Hugging Face folder.
        dst: the output ``.pth`` path.
        expect: if given, the format ``src`` must have (``'official'``, ``'hf'``, ``'mmpretrain'``).

    Returns:
        The detected source format.
    """
    state_dict, fmt, extra = load_state_dict_any(src)
    if expect is not None and fmt != expect:
        raise ValueError(f'{src} is a {fmt!r} checkpoint, not {expect!r}')
    model_cfg = infer_model_cfg(state_dict, fmt, extra)
    if not is_plain(model_cfg):
        raise TypeError(f'{src}: the inferred model config is not plain data: {model_cfg!r}')
    meta = dict(model_cfg=model_cfg, source=os.fspath(src), source_format=fmt)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), dst)
    return fmt
