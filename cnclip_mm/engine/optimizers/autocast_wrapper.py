"""Mixed precision by autocast alone (bf16 needs no loss scaling): works on CPU and GPU."""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from cnclip_mm.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """:class:`OptimWrapper` whose ``optim_context`` runs the forward under ``torch.autocast``.

    mmengine's ``AmpOptimWrapper`` refuses to start without an accelerator; this one covers CPU bf16
    (``--amp`` on a CPU machine) and GPU bf16.

    Args:
        dtype: autocast dtype, ``'bfloat16'`` (default) or ``'float16'`` (GPU only; prefer
            ``AmpOptimWrapper`` there, it scales the loss).
        device_type: ``'cpu'`` / ``'cuda'``; None picks cuda when available.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', device_type: str = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if dtype not in ('bfloat16', 'float16'):
                raise ValueError(f'AutocastOptimWrapper: dtype must be bfloat16 or float16, got {dtype!r}')
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype
        self.device_type = device_type or ('cuda' if torch.cuda.is_available() else 'cpu')

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.cast_dtype):
            yield
