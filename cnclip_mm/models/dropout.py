"""Dropout whose masks come from a fast generator on CPUs where torch draws them one element at a time.

PyTorch's CPU dropout (``bernoulli_``) uses MKL's vectorised, multi-threaded Bernoulli sampler on Intel
CPUs only (ATen checks the cpuinfo vendor). Everywhere else (AMD, ARM, builds without MKL) every
element costs a double-precision uniform from the mt19937 generator, in one thread: 1.2 ms for the
164 K activations of one dropout in the demo's text tower, about 7 ns an element. Here one 64-bit draw
from torch's default generator seeds a NumPy SFC64 stream, and each element keeps with probability
``1 - ceil(p * 2**32) / 2**32`` (a 32-bit uniform, ``p`` rounded up by less than 2.4e-10). The mask
is a function of torch's generator state, so ``torch.manual_seed`` and the RNG state saved with a
checkpoint reproduce it; the masks differ from torch's own, as MKL's differ from the serial path's.
"""
import math
import platform
from typing import Optional

import numpy as np
import torch
from torch import nn

from cnclip_mm.utils.cpu_vendor import cpu_vendor

_TWO_32 = 1 << 32


def torch_mask_is_serial(vendor: Optional[str] = None, mkl: Optional[bool] = None) -> bool:
    """Whether torch's CPU ``bernoulli_`` draws element by element here (not MKL's sampler).

    ``vendor`` / ``mkl`` default to this machine's CPU vendor string and torch build (for tests).
    """
    vendor = _cpu_vendor() if vendor is None else vendor
    mkl = torch.backends.mkl.is_available() if mkl is None else mkl
    return not (mkl and vendor == 'GenuineIntel')


def _cpu_vendor() -> str:
    vendor = cpu_vendor()
    if vendor is not None:
        return vendor
    return 'GenuineIntel' if 'Intel' in platform.processor() else platform.processor()


SERIAL_SAMPLING = torch_mask_is_serial()  # this machine, read once


@torch.compiler.disable  # run as Python under torch.compile too: compiled and eager draw the same masks
def keep_mask(shape, p: float) -> torch.Tensor:
    """A bool CPU tensor of ``shape``, each element True with probability ``1 - p`` (to 2**-32)."""
    threshold = math.ceil(p * _TWO_32)
    if threshold >= _TWO_32:
        return torch.zeros(shape, dtype=torch.bool)
    n = math.prod(shape)
    seed = int(torch.empty((), dtype=torch.int64).random_())  # one draw from torch's default generator
    halves = np.random.SFC64(seed).random_raw((n + 1) // 2).view(np.uint32)[:n]
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


def uses_fast_masks(x: torch.Tensor) -> bool:
    """Whether :func:`dropout` draws its own mask for ``x``: a CPU tensor where torch samples serially,
    outside tracing (exports keep torch's op)."""
    return x.device.type == 'cpu' and SERIAL_SAMPLING and not torch.jit.is_tracing()


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` in distribution; faster where :func:`uses_fast_masks`."""
    if not training or p == 0:
        return x
    if not uses_fast_masks(x):
        return torch.nn.functional.dropout(x, p, training)
    if p >= 1:
        return x * 0
    return _MaskAndScale.apply(x, keep_mask(x.shape, p), 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (``inplace`` is not honoured: the result is a new tensor)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def use_fast_dropout(module: nn.Module) -> int:
    """Replace every plain ``nn.Dropout`` inside ``module`` by :class:`Dropout`; returns how many."""
    swapped = 0
    for parent in module.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p))
                swapped += 1
    return swapped
