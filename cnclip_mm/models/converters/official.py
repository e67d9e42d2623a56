"""Official Chinese-CLIP checkpoints (``visual.*``, ``bert.*``, DDP ``module.`` prefix) <-> this project's layout.

The image tower already uses the official names, so the mapping is a prefix swap; see docs/design.md.
"""
from typing import Dict

import torch

DDP_PREFIX = 'module.'
# (official prefix, own prefix); order matters only for readability, the prefixes are disjoint.
PREFIXES = (('visual.', 'image_encoder.'), ('bert.', 'text_encoder.bert.'))
TOP_LEVEL = ('text_projection', 'logit_scale')
# Present in some official files but unused by Chinese CLIP: the BERT pooler and saved position-id buffers.
DROPPED = ('bert.pooler.', )
DROPPED_SUFFIXES = ('.position_ids', '.token_type_ids')
# A loss's own training state (SigLipLoss's ``logit_bias``) has no official counterpart: the official model
# scores with ``exp(logit_scale)`` alone, and a bias shifts every score alike (rankings unchanged).
LOSS_PREFIX = 'loss_module.'

StateDict = Dict[str, torch.Tensor]


def strip_prefix(state_dict: StateDict, prefix: str = DDP_PREFIX) -> StateDict:
    """Remove ``prefix`` from every key that carries it (DDP-wrapped models save ``module.*``)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def official_to_mm(state_dict: StateDict) -> StateDict:
    """Map an official state dict (with or without ``module.``) to this project's names.

    Keys outside the known layout pass through unchanged so that the strict loader reports them.
    """
    out = {}
    for key, value in strip_prefix(state_dict).items():
        if key.startswith(DROPPED) or key.endswith(DROPPED_SUFFIXES):
            continue
        for src, dst in PREFIXES:
            if key.startswith(src):
                key = dst + key[len(src):]
                break
        out[key] = value
    return out


def mm_to_official(state_dict: StateDict, ddp_prefix: bool = True) -> StateDict:
    """Map this project's names back to the official ones (``module.`` added when ``ddp_prefix``); the loss's
    training state (``loss_module.*``) is left out."""
    out = {}
    head = DDP_PREFIX if ddp_prefix else ''
    for key, value in state_dict.items():
        if key.startswith(LOSS_PREFIX):
            continue
        for src, dst in PREFIXES:
            if key.startswith(dst):
                key = src + key[len(dst):]
                break
        out[head + key] = value
    return out
