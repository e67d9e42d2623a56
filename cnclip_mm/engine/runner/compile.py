"""``torch.compile`` for Chinese CLIP: the two towers, compiled in place.

mmengine's ``compile`` option wraps the whole ``train_step``, optimizer step included, which
dynamo fails to trace in torch 2.13 (the optimizer's param groups) and which would guard on the
per-sample metadata of every batch. Compiling the towers instead (``nn.Module.compile``, in place)
keeps state-dict keys and checkpoints unchanged, also speeds up validation and testing, and
recompiles when a stage switch changes which parameters require grad (dynamo guards on it).
"""
from typing import Optional, Union

import torch
from mmengine.logging import print_log
from torch import nn


def compile_options(compile_cfg: Union[None, bool, dict]) -> Optional[dict]:
    """The keyword arguments of ``torch.compile`` for a config's ``compile`` value (None: off)."""
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        return {}
    if not isinstance(compile_cfg, dict):
        raise TypeError(f'compile must be a bool or a dict of torch.compile options, got {compile_cfg!r}')
    return dict(compile_cfg)


def compile_towers(model: nn.Module, compile_cfg: Union[None, bool, dict]) -> bool:
    """Compile ``model.image_encoder`` and ``model.text_encoder`` in place (once); True if compiled."""
    options = compile_options(compile_cfg)
    if options is None or getattr(model, '_towers_compiled', False):
        return False
    for name in ('image_encoder', 'text_encoder'):
        getattr(model, name).compile(**options)
    model._towers_compiled = True
    print_log(f'torch.compile({options or ""}) applied to image_encoder and text_encoder; the first '
              'iterations (and the first after a stage switch) are slow while they compile', logger='current')
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    return True
