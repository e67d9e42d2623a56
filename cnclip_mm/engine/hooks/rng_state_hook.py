"""Save and restore the random generators with checkpoints, so a resumed run continues exactly."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook

from cnclip_mm.registry import HOOKS


def get_rng_states() -> tuple:
    """The python, numpy, torch (and CUDA) generator states of this process, in memory."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def set_rng_states(states: tuple) -> None:
    """Put back states taken by :func:`get_rng_states`."""
    python, numpy, torch_state, cuda = states
    random.setstate(python)
    np.random.set_state(numpy)
    torch.set_rng_state(torch_state)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Store python / numpy / torch (and CUDA) RNG states in each checkpoint and restore them on resume.

    mmengine re-seeds a resumed run from scratch, so dropout masks and augmentations after a resume
    differ from an uninterrupted run; with this hook they are the same. Only the saving rank's state
    is stored: every rank continues from it.

    Validation must not move the training random streams (its data loader draws a seed, for one), or a
    run resumed from an epoch checkpoint written before validation would diverge: the states are taken
    before each validation run and put back before anything saves a checkpoint after it.
    """

    priority = 'LOW'  # after_val_epoch runs before CheckpointHook's (VERY_LOW) best-checkpoint save

    def __init__(self) -> None:
        self._before_val: Optional[tuple] = None

    def before_val(self, runner) -> None:
        self._before_val = get_rng_states()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._before_val is not None:
            set_rng_states(self._before_val)

    def after_val(self, runner) -> None:
        self.after_val_epoch(runner)
        self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        np_state = np.random.get_state()
        checkpoint['rng_state'] = dict(
            python=list(random.getstate()[1]), python_version=random.getstate()[0],
            python_gauss=random.getstate()[2],
            numpy=dict(keys=torch.from_numpy(np_state[1].astype(np.int64)), pos=int(np_state[2]),
                       has_gauss=int(np_state[3]), gauss=float(np_state[4])),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None:  # checkpoint written without this hook, or weights-only load
            return
        random.setstate((state['python_version'], tuple(state['python']), state['python_gauss']))
        np_state = state['numpy']
        np.random.set_state(('MT19937', np_state['keys'].numpy().astype(np.uint32), np_state['pos'],
                             np_state['has_gauss'], np_state['gauss']))
        torch.set_rng_state(state['torch'])
        if torch.cuda.is_available() and state['cuda']:
            # The saving machine may have seen more GPUs than this one: restore those present.
            for index, cuda_state in enumerate(state['cuda'][:torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state, index)
