"""The two calls every caller of a loss module makes (the model's loss mode, feature caching).

A loss module may need more of the batch than features (sample keys, a teacher's features): it
then has ``batch_context(inputs, data_samples) -> dict`` whose result is passed to ``forward`` as
keyword arguments, computed once per batch. It may return a dict of named terms instead of a tensor.
"""
from typing import Dict, Optional, Union

from torch import Tensor, nn


def batch_context(loss_module: nn.Module, inputs: dict, data_samples: Optional[list]) -> dict:
    """Extra keyword arguments ``loss_module`` wants for this batch (``{}`` for a plain loss)."""
    hook = getattr(loss_module, 'batch_context', None)
    return hook(inputs, data_samples) if hook is not None else {}


def total_loss(loss: Union[Tensor, Dict[str, Tensor]]) -> Tensor:
    """The value to backpropagate: the loss itself, or the sum of a dict's ``*loss*`` terms."""
    if isinstance(loss, dict):
        return sum(value for key, value in loss.items() if 'loss' in key)
    return loss
