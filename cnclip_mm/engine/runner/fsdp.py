"""FSDP1 through MMEngine: a wrapper that runs on CPU (gloo), shards per block or per Linear, keeps
scalar parameters and knows ``accum_freq``; a strategy that loads optimizer states with the current
torch API."""
from typing import Optional, Sequence, Union

import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy
from mmengine.model.wrappers import MMFullyShardedDataParallel
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

from cnclip_mm.registry import MODEL_WRAPPERS, STRATEGIES

from .ddp import FeatureCacheTrainStep

# Presets of ``wrap_classes``: the residual blocks of the ViT and of RN50, the text tower's layer.
WRAP_PRESETS = {
    'blocks': ('ResidualAttentionBlock', 'Bottleneck', 'BertLayer'),
    'linears': ('Linear',),
}


def wrap_policy(module: nn.Module, wrap_classes: Union[str, Sequence[str]]) -> ModuleWrapPolicy:
    """An FSDP auto-wrap policy making each module of the named classes its own FSDP unit.

    Classes are found by name among ``module``'s submodules when it is wrapped, so a policy in a config
    needs no import and survives a model whose classes move or are renamed as long as one name matches.

    Args:
        module: The model about to be wrapped.
        wrap_classes: A preset of :data:`WRAP_PRESETS` (``'blocks'``, ``'linears'``) or class names.

    Returns:
        The policy (subclasses of a named class are wrapped too).
    """
    names = WRAP_PRESETS.get(wrap_classes) if isinstance(wrap_classes, str) else tuple(wrap_classes)
    if names is None:
        raise ValueError(f'wrap_classes: unknown preset {wrap_classes!r}; use one of {sorted(WRAP_PRESETS)} '
                         'or a list of module class names')
    classes = {type(m) for m in module.modules() if type(m).__name__ in names}
    if not classes:
        present = sorted({type(m).__name__ for m in module.modules()})
        raise ValueError(f'wrap_classes {list(names)}: no module of the model has one of these classes '
                         f'(its classes: {present})')
    return ModuleWrapPolicy(classes)


def _average_grad(param: torch.Tensor) -> None:
    dist.all_reduce(param.grad)
    param.grad /= dist.get_world_size()


@MODEL_WRAPPERS.register_module()
class CLIPFullyShardedDataParallel(FeatureCacheTrainStep, MMFullyShardedDataParallel):
    """:class:`MMFullyShardedDataParallel` for Chinese CLIP.

    * CPU-only torch: ``device_id`` (a rank from mmengine's FSDPStrategy) becomes the CPU device,
      without which FSDP refuses to run; ``sync_module_states`` is done here by broadcasting.
    * FSDP1 cannot shard 0-d parameters (``logit_scale``): they are left out of sharding
      (``ignored_states``) and their gradient is averaged over ranks after each backward, as DDP does.
    * ``wrap_classes`` (see :func:`wrap_policy`): every residual block / BERT layer (``'blocks'``) or
      every Linear (``'linears'``) becomes an FSDP unit, so each rank holds 1/world of every block's
      parameters and gathers one unit at a time (one unit for the whole model would gather everything
      at once). mmengine's ``auto_wrap_policy`` still works for other policies.
    * ``original_shapes`` (name -> shape, recorded before sharding) lets the optimizer constructor decide
      weight decay on the original tensors rather than on FSDP's flat 1-D shards.
    * ``train_step`` delegates to the feature-cache accumulator when ``accum_freq > 1``.
    * Full state dicts on CPU are not "offloaded" (see :meth:`set_state_dict_type`).

    Tower locking works because the strategy uses ``use_orig_params=True``: the original
    parameters stay visible and their ``requires_grad`` may change between steps.
    """

    def __init__(self, module: nn.Module, device_id=None,
                 wrap_classes: Optional[Union[str, Sequence[str]]] = None, **kwargs) -> None:
        if wrap_classes is not None:
            if kwargs.get('auto_wrap_policy') is not None:
                raise ValueError('give either wrap_classes or auto_wrap_policy, not both')
            kwargs['auto_wrap_policy'] = wrap_policy(module, wrap_classes)
        original_shapes = {name: p.shape for name, p in module.named_parameters()}
        if not torch.cuda.is_available():
            device_id = torch.device('cpu')
            if kwargs.pop('sync_module_states', False):  # FSDP does it on GPUs only
                with torch.no_grad():
                    for tensor in [*module.parameters(), *module.buffers()]:
                        dist.broadcast(tensor, src=0)
        scalars = [p for p in module.parameters() if p.dim() == 0]
        if scalars:
            kwargs['ignored_states'] = list(kwargs.get('ignored_states') or []) + scalars
            for param in scalars:
                param.register_post_accumulate_grad_hook(_average_grad)
        super().__init__(module=module, device_id=device_id, **kwargs)
        self.original_shapes = original_shapes

    @staticmethod
    def set_state_dict_type(module, state_dict_type, state_dict_config=None, optim_state_dict_config=None):
        """FSDP's own, except that without CUDA nothing is "offloaded to CPU": on a CPU module the
        offload frees the memory a full state dict's tensors still point to (a segfault on save)."""
        if not torch.cuda.is_available():
            for config in (state_dict_config, optim_state_dict_config):
                if getattr(config, 'offload_to_cpu', False):
                    config.offload_to_cpu = False
        return FullyShardedDataParallel.set_state_dict_type(
            module, state_dict_type, state_dict_config, optim_state_dict_config)


@STRATEGIES.register_module()
class CLIPFSDPStrategy(FSDPStrategy):
    """mmengine 0.10's :class:`FSDPStrategy` with ``load_optim_state_dict`` calling
    ``FSDP.optim_state_dict_to_load`` by keyword (torch 2.x changed its argument order)."""

    def load_optim_state_dict(self, state_dict: dict) -> None:
        optim_state_dict = FullyShardedDataParallel.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)
