"""Optimizer constructor: every parameter in, no weight decay on gains, biases and embeddings."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn
from torch.distributed.fsdp._common_utils import clean_tensor_name

from cnclip_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

# Name fragments of parameters that are never decayed besides every tensor with ndim < 2
# (norm gains/biases, biases, logit_scale, class_embedding).
DEFAULT_NO_DECAY_KEYS = ('positional_embedding', 'position_embeddings', 'class_embedding',
                         'logit_scale')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CLIPOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Two parameter groups (decay / no decay) holding **all** parameters, frozen ones too.

    mmengine's default constructor drops parameters with ``requires_grad=False`` once any
    ``paramwise_cfg`` is set, so a tower locked before the optimizer exists would never train after
    it is unlocked. Frozen parameters get ``grad=None`` and optimizers skip them, so keeping them in
    costs nothing while locked.

    ``paramwise_cfg`` keys: ``no_decay_keys`` (name fragments, default
    :data:`DEFAULT_NO_DECAY_KEYS`), ``decay_1d`` (bool, default False: 1-D tensors are not decayed).

    Under FSDP (``use_orig_params=True``) the parameters are flat 1-D shards with prefixed names; the
    groups are decided on the original names and shapes, which the wrapper records as
    ``original_shapes`` (else every parameter would look 1-D and lose its weight decay).
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        shapes = getattr(model, 'original_shapes', None)
        if hasattr(model, 'module'):
            model = model.module
        unknown = set(self.paramwise_cfg) - {'no_decay_keys', 'decay_1d'}
        if unknown:
            raise KeyError(f'CLIPOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(unknown)}; '
                           'allowed: no_decay_keys, decay_1d')
        groups = self.param_groups(model, self.paramwise_cfg.get('no_decay_keys'),
                                   self.paramwise_cfg.get('decay_1d', False), shapes)
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cfg['params'] = groups
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))

    def param_groups(self, model: nn.Module, no_decay_keys: Optional[Sequence[str]] = None,
                     decay_1d: bool = False, shapes: Optional[Dict[str, torch.Size]] = None) -> List[dict]:
        """Split ``model``'s parameters into a decayed and a non-decayed group (names kept in
        ``'names'`` for inspection).

        Args:
            model: The bare model (inside FSDP: the wrapped root, names with FSDP's prefixes).
            no_decay_keys: Name fragments never decayed (default :data:`DEFAULT_NO_DECAY_KEYS`).
            decay_1d: Decay tensors with fewer than 2 dimensions too.
            shapes: Original shape by parameter name, where the parameters are FSDP shards.
        """
        keys = tuple(DEFAULT_NO_DECAY_KEYS if no_decay_keys is None else no_decay_keys)
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            name = clean_tensor_name(name)  # FSDP's (and activation checkpointing's) wrapper prefixes
            if shapes is not None and name not in shapes:
                raise KeyError(f'CLIPOptimWrapperConstructor: parameter {name!r} has no recorded original shape '
                               f'(the wrapper recorded {len(shapes)} parameters)')
            ndim = len(shapes[name]) if shapes is not None else param.ndim
            skip = (ndim < 2 and not decay_1d) or any(k in name for k in keys)
            (no_decay if skip else decay).append((name, param))
        groups = []
        for members, wd in ((decay, self.base_wd), (no_decay, 0.0)):
            if members:
                group = dict(params=[p for _, p in members], names=[n for n, _ in members])
                if wd is not None:
                    group['weight_decay'] = wd
                groups.append(group)
        return groups
