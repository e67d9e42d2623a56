"""Weight initializers for ``init_cfg``: the image tower from OpenAI CLIP (stage 1), or a whole model from a
Chinese CLIP checkpoint of any format (fine-tuning from released weights)."""
from typing import Dict

import torch
from mmengine.model.weight_init import update_init_info
from torch import nn

from cnclip_mm.registry import WEIGHT_INITIALIZERS

from .files import is_torchscript, read_weights
from .loading import load_state_dict_any, load_state_dict_into
from .official import strip_prefix


def load_openai_visual(path: str, prefix: str = 'visual.') -> Dict[str, torch.Tensor]:
    """The image-tower weights of an OpenAI / open_clip CLIP file, with ``prefix`` removed.

    OpenAI releases TorchScript archives; those are opened with ``torch.jit.load`` (compiled TorchScript, not a
    pickle) and only their ``state_dict()`` is kept. Plain state dicts load with ``weights_only=True``.
    """
    if is_torchscript(path):
        state_dict = torch.jit.load(path, map_location='cpu').state_dict()
    else:
        state_dict, _ = read_weights(path)
    state_dict = strip_prefix(state_dict)
    visual = {k[len(prefix):]: v.float() for k, v in state_dict.items() if k.startswith(prefix)}
    if not visual:
        raise KeyError(f'{path}: no keys start with {prefix!r}; found e.g. {sorted(state_dict)[:8]}')
    return visual


@WEIGHT_INITIALIZERS.register_module(name='OpenAICLIPVisual')
class OpenAICLIPVisualInit:
    """``init_cfg=dict(type='OpenAICLIPVisual', checkpoint='ViT-B-16.pt')`` on an image tower (or on the whole
    ``ChineseCLIP``, whose ``image_encoder`` is then initialised).

    Args:
        checkpoint: an OpenAI CLIP file (TorchScript or state dict) or an open_clip state dict.
        prefix: the image tower's key prefix in that file.
        strict: raise when keys or shapes differ (the listing names them).
    """

    def __init__(self, checkpoint: str, prefix: str = 'visual.', strict: bool = True):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.strict = strict
        self.wholemodule = False

    def __call__(self, module: nn.Module) -> None:
        target = getattr(module, 'image_encoder', module)
        state_dict = load_openai_visual(self.checkpoint, self.prefix)
        load_state_dict_into(target, state_dict, strict=self.strict,
                             source=f'{self.checkpoint} (OpenAI CLIP {self.prefix}*)')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'{type(self).__name__}: load from {self.checkpoint}')


@WEIGHT_INITIALIZERS.register_module(name='ChineseCLIPCheckpoint')
class ChineseCLIPCheckpointInit:
    """``init_cfg=dict(type='ChineseCLIPCheckpoint', checkpoint=...)`` on a ``ChineseCLIP``: loads an official,
    Hugging Face, mmpretrain or own checkpoint with key conversion.

    mmengine's ``load_from`` loads non-strictly without converting names, so a foreign file would silently leave the
    model untouched; this initializer converts and, by default, refuses any mismatch.

    Args:
        checkpoint: any format ``load_state_dict_any`` reads.
        strict: raise on missing / unexpected / mis-shaped keys (the listing names them).
    """

    def __init__(self, checkpoint: str, strict: bool = True):
        self.checkpoint = checkpoint
        self.strict = strict
        self.wholemodule = False

    def __call__(self, module: nn.Module) -> None:
        state_dict, fmt, _ = load_state_dict_any(self.checkpoint)
        load_state_dict_into(module, state_dict, strict=self.strict, source=f'{self.checkpoint} ({fmt} format)')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'{type(self).__name__}: load {fmt} weights from {self.checkpoint}')
