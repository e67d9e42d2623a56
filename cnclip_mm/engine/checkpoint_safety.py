"""Let ``torch.load(weights_only=True)`` (torch >= 2.6 default) read mmengine's own checkpoints.

mmengine 0.10.7 saves the message hub (``HistoryBuffer`` objects holding numpy arrays) in every
checkpoint, so ``--resume`` fails under the safe loader. We allow-list exactly those types once;
foreign files keep being loaded with ``weights_only=True`` and nothing else is unpickled.

``HistoryBuffer.__getstate__`` also pickles its statistics functions, which needs ``getattr`` at
load time (allow-listing that would open the safe loader wide). Those functions live in a
class-level registry that every process fills on import, so we pickle buffers without them.
"""
import copyreg
from typing import List

import torch
from mmengine.logging.history_buffer import HistoryBuffer

from cnclip_mm.models.converters.files import checkpoint_types


def mmengine_checkpoint_types() -> List[object]:
    """The globals an mmengine checkpoint (message hub + numpy history) needs beyond tensors: the same
    allow-list :func:`cnclip_mm.models.converters.files.safe_torch_load` uses (one list for every path)."""
    return checkpoint_types()


def _reduce_history_buffer(buf: HistoryBuffer):
    state = {k: v for k, v in buf.__dict__.items() if k != 'statistics_methods'}
    return copyreg.__newobj__, (HistoryBuffer,), state


def register_checkpoint_safe_globals() -> None:
    """Allow-list :func:`mmengine_checkpoint_types` for ``torch.load(weights_only=True)`` and pickle
    ``HistoryBuffer`` without its function table."""
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_types())
