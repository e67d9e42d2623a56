"""Linear layers' float32 CPU products through oneDNN instead of PyTorch's BLAS (MKL).

Why: MKL runs its generic AVX2 kernels on x86 CPUs not made by Intel (capping it to AVX2 changed
nothing on the AMD EPYC measured in docs/speed.md, AVX-512 and all); oneDNN, which PyTorch ships
for its CPU convolutions, picks its kernels by instruction set. Its dense Linear kernel
(``torch.ops.mkldnn._linear_pointwise``) takes the weight as it is, so a product costs no copy.
The forward ``x @ W.T`` and the input gradient ``grad @ W`` run there; the weight gradient
``grad.T @ x`` stays with BLAS (oneDNN was 0.71-1.20x there), and so do products under
``MIN_MACS`` multiply-adds (even or slower: per-call overhead).

Backends: ``'blas'``, ``'onednn'``, ``'auto'`` (oneDNN on x86 CPUs whose vendor is not Intel,
BLAS elsewhere: on Intel CPUs MKL is Intel's own tuned path). ``CNCLIP_GEMM`` chooses for a
process. Results agree with BLAS to float rounding (another summation order).
"""
import os
import platform
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .vendor import cpu_vendor

BACKENDS = ('auto', 'blas', 'onednn')
ENV = 'CNCLIP_GEMM'
# Below this many multiply-adds oneDNN was even with MKL or slower; the demo's 1088 x 128 x 384
# products sit there, ViT-B/16's sit thousands of times above.
MIN_MACS = 2 ** 26

_probed = {}


def probe() -> Optional[str]:
    """None when oneDNN's Linear kernel runs here and agrees with ``F.linear``, else why not.

    Runs one tiny product, once per process; :func:`cnclip_mm.cpu.cpu_speed` calls it on entry, never
    inside a forward (so never inside a tracer or compiler).
    """
    if 'why' not in _probed:
        why = None
        if not torch.backends.mkldnn.is_available():
            why = 'this PyTorch build has no oneDNN'
        else:
            try:
                g = torch.Generator().manual_seed(0)
                x, w, b = (torch.randn(*s, generator=g) for s in ((5, 8), (3, 8), (3,)))
                if not torch.allclose(product(x, w, b), F.linear(x, w, b), atol=1e-5):
                    why = "oneDNN's Linear disagrees with F.linear"
            except (RuntimeError, AttributeError) as e:  # op missing or refused in this build
                why = f"oneDNN's Linear is not usable: {e}"
        _probed['why'] = why
    return _probed['why']


def resolve(name: Optional[str] = None) -> Tuple[bool, str]:
    """(whether Linear products take oneDNN, why) for backend ``name`` (default: ``CNCLIP_GEMM`` or auto)."""
    name = os.environ.get(ENV, 'auto') if name is None else name
    if name not in BACKENDS:
        raise ValueError(f'gemm backend {name!r} (environment variable {ENV} or argument): expected one of '
                         f'{", ".join(BACKENDS)}')
    if name == 'blas':
        return False, f'{ENV}=blas'
    failure = probe()
    if name == 'onednn':
        if failure:
            raise RuntimeError(f'gemm backend onednn: {failure}')
        return True, f'{ENV}=onednn'
    vendor = cpu_vendor()
    if platform.machine().lower() not in ('x86_64', 'amd64') or vendor is None:
        return False, f'not a recognised x86 CPU ({platform.machine()})'
    if vendor == 'GenuineIntel':
        return False, 'Intel CPU: MKL runs its own kernels'
    if failure:
        return False, failure
    return True, f'{vendor} CPU, where MKL runs its generic path'


def product(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN, no autograd (``x`` 2-D; ``weight`` may be a transposed view)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')


def worth_it(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight.T`` (``x`` ``[..., K]``, ``weight`` ``[N, K]``, both plain CPU tensors) is an
    fp32 product large enough for oneDNN."""
    return (x.dtype == torch.float32 and weight.dtype == torch.float32 and weight.dim() == 2
            and x.dim() >= 1 and x.numel() * weight.shape[0] >= MIN_MACS)


class _OneDnnLinear(torch.autograd.Function):
    """``F.linear`` on a 2-D input: forward and input gradient by oneDNN, weight gradient by BLAS."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return product(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = None
        if need_x:
            grad_x = product(grad, weight.t(), None) if worth_it(grad, weight.t()) else torch.mm(grad, weight)
        grad_w = torch.mm(grad.t(), x) if need_w else None
        grad_b = grad.sum(0) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` by oneDNN (for inputs that :func:`worth_it` accepts)."""
    flat = x.reshape(-1, x.shape[-1])
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    out = _OneDnnLinear.apply(flat, weight, bias) if grad else product(flat, weight, bias)
    return out.view(*x.shape[:-1], weight.shape[0])
