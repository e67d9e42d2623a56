"""Mixed precision by autocast alone (bf16 needs no loss scaling): works on CPU and GPU."""
from contextlib import contextmanager, nullcontext
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from cnclip_mm.cpu.bf16 import Bf16GemmAsFp32, uses_fp32_gemm
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
        bf16_gemm: how CPU bf16 matmuls run, forward and backward
            (:mod:`cnclip_mm.cpu.bf16`): ``'auto'`` (default) uses fp32 kernels on the bf16
            values where the CPU has no bf16 matrix instructions (same math, ~fp32 speed instead of
            ~8x slower per matmul), ``'native'`` always PyTorch's bf16 kernels, ``'fp32'`` always
            the fp32 kernels.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', device_type: str = None,
                 bf16_gemm: str = 'auto', **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if dtype not in ('bfloat16', 'float16'):
                raise ValueError(f'AutocastOptimWrapper: dtype must be bfloat16 or float16, got {dtype!r}')
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype
        self.device_type = device_type or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.bf16_gemm = bf16_gemm
        # Decided once (validates the choice now, not at the first step); used every forward and backward.
        self._fp32_gemm = uses_fp32_gemm(bf16_gemm, self.device_type) and self.cast_dtype == torch.bfloat16

    def _gemm_context(self):
        return Bf16GemmAsFp32() if self._fp32_gemm else nullcontext()

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.cast_dtype), \
                self._gemm_context():
            yield

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """The backward's matmuls follow ``bf16_gemm`` as the forward's do."""
        with self._gemm_context():
            super().backward(loss, **kwargs)
