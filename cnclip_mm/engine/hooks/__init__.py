"""Training hooks (registered in ``HOOKS``)."""
from .adapter_checkpoint_hook import AdapterCheckpointHook
from .checkpoint_hook import CLIPCheckpointHook
from .logit_scale_hook import LogitScaleClampHook
from .rng_state_hook import RNGStateHook
from .tower_lock_hook import TowerLockHook
from .unmasked_tuning_hook import UnmaskedTuningHook

__all__ = ['AdapterCheckpointHook', 'CLIPCheckpointHook', 'LogitScaleClampHook', 'RNGStateHook',
           'TowerLockHook', 'UnmaskedTuningHook']
