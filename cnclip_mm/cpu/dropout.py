"""Dropout masks from a fast generator, the same on every CPU.

PyTorch's CPU dropout (``bernoulli_``) uses MKL's vectorised sampler on Intel CPUs only (ATen checks
the vendor); everywhere else each element costs a double-precision uniform from mt19937, in one
thread (about 7 ns an element). So torch's masks, and its speed, depend on the CPU's vendor. Here
one 64-bit draw from torch's default generator seeds a NumPy SFC64 stream, and each element is kept
when a 32-bit uniform clears ``ceil(p * 2**32)`` (``p`` rounded up by less than 2.4e-10). The mask
is a function of torch's generator state alone: ``torch.manual_seed`` and the RNG state saved with a
checkpoint reproduce it, on Intel, AMD and ARM alike. The masks differ from torch's own.
"""
import math

import numpy as np
import torch

_TWO_32 = 1 << 32


def keep_mask(shape, p: float) -> torch.Tensor:
    """A bool CPU tensor of ``shape``, each element True with probability ``1 - p`` (to 2**-32)."""
    threshold = math.ceil(p * _TWO_32)
    if threshold >= _TWO_32:
        return torch.zeros(shape, dtype=torch.bool)
    n = math.prod(shape)
    seed = int(torch.empty((), dtype=torch.int64).random_())  # one draw from torch's default generator
    halves = np.random.SFC64(seed).random_raw((n + 1) // 2).view('<u4')[:n]
    return torch.from_numpy(halves >= np.uint32(threshold)).view(shape)


class _MaskAndScale(torch.autograd.Function):
    """``x * keep / (1 - p)``; saves the bool mask only (1 byte an element, as torch's dropout)."""

    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        keep, = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode ``F.dropout(x, p)`` for a CPU tensor and ``0 < p <= 1``, masks from :func:`keep_mask`."""
    if p >= 1:
        return x * 0
    return _MaskAndScale.apply(x, keep_mask(x.shape, p), 1.0 / (1.0 - p))
