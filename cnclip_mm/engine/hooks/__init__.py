"""Training hooks (registered in ``HOOKS``)."""
from .checkpoint_hook import CLIPCheckpointHook
from .logit_scale_hook import LogitScaleClampHook
from .rng_state_hook import RNGStateHook
from .tower_lock_hook import TowerLockHook

__all__ = ['CLIPCheckpointHook', 'LogitScaleClampHook', 'RNGStateHook', 'TowerLockHook']
