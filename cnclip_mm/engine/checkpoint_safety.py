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

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def _numpy_rebuild_types() -> List[object]:
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    dtypes = [type(np.dtype(t)) for t in
              ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool')]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def mmengine_checkpoint_types() -> List[object]:
    """The globals an mmengine checkpoint (message hub + numpy history) needs beyond tensors."""
    return [HistoryBuffer, *_numpy_rebuild_types()]


def _reduce_history_buffer(buf: HistoryBuffer):
    state = {k: v for k, v in buf.__dict__.items() if k != 'statistics_methods'}
    return copyreg.__newobj__, (HistoryBuffer,), state


def register_checkpoint_safe_globals() -> None:
    """Allow-list :func:`mmengine_checkpoint_types` for ``torch.load(weights_only=True)`` and pickle
    ``HistoryBuffer`` without its function table."""
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_types())
