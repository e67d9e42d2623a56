"""Where a Linear layer's matrix products run on CPU: PyTorch's BLAS (MKL) or oneDNN.

Why: PyTorch's CPU ``addmm`` / ``mm`` call MKL, which runs its generic AVX2 kernels on x86 CPUs not made
by Intel (capping it to AVX2 changed nothing on the AMD EPYC here, AVX-512 and all). oneDNN, which
PyTorch ships for its CPU convolutions, picks its kernels by instruction set. On that machine it ran a
Linear's forward product ``x @ W.T`` and its data gradient ``grad @ W`` 1.03-1.15x as fast, at 1 and 2
threads (``python benchmarks/gemm.py``); for the weight gradient ``grad.T @ x`` it was 0.71-1.20x, so
that one stays with BLAS, and so do products under ``MIN_MACS`` multiply-adds (even or slower there).

Backends: ``'blas'`` (PyTorch's own path), ``'onednn'``, ``'auto'`` (oneDNN on x86 CPUs whose vendor is
not Intel, BLAS elsewhere: on Intel CPUs MKL is Intel's own tuned path, and that case was not measured).
The ``CNCLIP_GEMM`` environment variable sets it for a process, :func:`set_backend` / :func:`backend`
in code, and the runner's ``gemm_backend`` config key for a run. Only float32 CPU products outside
autocast, tracing (exports) and ``torch.compile`` take the oneDNN route. Results agree with BLAS to
float rounding (another summation order), so the backend is part of what makes a run reproducible.
"""
import os
import platform
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from cnclip_mm.utils.cpu_vendor import cpu_vendor

BACKENDS = ('auto', 'blas', 'onednn')
ENV = 'CNCLIP_GEMM'
# Below this many multiply-adds oneDNN was even with MKL or slower (per-call overhead); the demo's
# 1088 x 128 x 384 products sit there, ViT-B/16's sit thousands of times above.
MIN_MACS = 2 ** 26

_state = {'backend': None, 'resolved': None, 'why': None, 'probed': None}


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f'gemm backend {name!r}: expected one of {", ".join(BACKENDS)}')
    return name


def _probe() -> Optional[str]:
    """None when oneDNN's dense Linear kernel runs here and agrees with ``F.linear``, else why not."""
    if _state['probed'] is None:
        why = ''
        if not torch.backends.mkldnn.is_available():
            why = 'this PyTorch build has no oneDNN'
        else:
            try:
                g = torch.Generator().manual_seed(0)
                x, w, b = (torch.randn(*s, generator=g) for s in ((5, 8), (3, 8), (3,)))
                if not torch.allclose(onednn_product(x, w, b), F.linear(x, w, b), atol=1e-5):
                    why = "oneDNN's Linear disagrees with F.linear"
            except (RuntimeError, AttributeError) as e:  # op missing or refused in this build
                why = f"oneDNN's Linear is not usable: {e}"
        _state['probed'] = why
    return _state['probed'] or None


def _resolve(name: str):
    """(``'blas'`` | ``'onednn'``, the reason) for a backend name on this machine."""
    if name == 'blas':
        return 'blas', 'asked for'
    failure = _probe()
    if name == 'onednn':
        if failure:
            raise RuntimeError(f'gemm backend onednn: {failure}')
        return 'onednn', 'asked for'
    vendor = cpu_vendor()
    if platform.machine().lower() not in ('x86_64', 'amd64') or vendor is None:
        return 'blas', f'auto: not a recognised x86 CPU ({platform.machine()})'
    if vendor == 'GenuineIntel':
        return 'blas', 'auto: Intel CPU, MKL runs its own kernels'
    if failure:
        return 'blas', f'auto: {failure}'
    return 'onednn', f'auto: {vendor} CPU, where MKL runs its generic path'


def set_backend(name: str) -> str:
    """Choose the backend for this process; returns what it resolved to (``'blas'`` or ``'onednn'``)."""
    resolved, why = _resolve(_check(name))
    _state.update(backend=name, resolved=resolved, why=why)
    return resolved


def get_backend() -> str:
    """The resolved backend, ``'blas'`` or ``'onednn'`` (first call: from ``CNCLIP_GEMM``, default auto)."""
    if _state['resolved'] is None:
        env = os.environ.get(ENV, 'auto')
        if env not in BACKENDS:
            raise ValueError(f'environment variable {ENV}={env!r}: expected one of {", ".join(BACKENDS)}')
        set_backend(env)
    return _state['resolved']


def get_choice() -> str:
    """The backend name chosen for this process (``'auto'``, ``'blas'`` or ``'onednn'``)."""
    get_backend()
    return _state['backend']


def describe() -> str:
    """One line for the log: the backend, and why."""
    resolved = get_backend()
    name = 'oneDNN' if resolved == 'onednn' else "PyTorch's BLAS"
    return f'Linear matrix products on CPU: {name} ({_state["why"]})'


@contextmanager
def backend(name: str):
    """Use backend ``name`` inside the block, then restore the previous choice."""
    get_backend()
    saved = dict(_state)
    set_backend(name)
    try:
        yield _state['resolved']
    finally:
        _state.update(saved)


def wants_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight.T`` (``x`` ``[..., K]``, ``weight`` ``[N, K]``) takes the oneDNN route."""
    if get_backend() != 'onednn' or x.device.type != 'cpu':
        return False
    if x.dtype != torch.float32 or weight.dtype != torch.float32 or weight.dim() != 2:
        return False
    if type(x) is not torch.Tensor or type(weight) not in (torch.Tensor, nn.Parameter):  # DTensor, fakes
        return False
    if torch.is_autocast_enabled('cpu') or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return x.numel() * weight.shape[0] >= MIN_MACS


def onednn_product(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN (for callers that asked :func:`wants_onednn`; no autograd).
    ``weight`` may be a transposed view: no copy is made."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')


class _OneDnnLinear(torch.autograd.Function):
    """``F.linear`` on a 2-D input: forward and data gradient by oneDNN, weight gradient by BLAS."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return onednn_product(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = data_grad(grad, weight) if need_x else None
        grad_w = torch.mm(grad.t(), x) if need_w else None
        grad_b = grad.sum(0) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN where :func:`wants_onednn` says so."""
    if not wants_onednn(x, weight):
        return F.linear(x, weight, bias)
    flat = x.reshape(-1, x.shape[-1])
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    out = _OneDnnLinear.apply(flat, weight, bias) if grad else onednn_product(flat, weight, bias)
    return out.view(*x.shape[:-1], weight.shape[0])


def data_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``grad @ weight`` (``grad`` ``[M, N]``, ``weight`` ``[N, K]``): a Linear's input gradient."""
    if wants_onednn(grad, weight.t()):
        return onednn_product(grad, weight.t(), None)
    return torch.mm(grad, weight)


class Linear(nn.Linear):
    """``nn.Linear`` whose products go through :func:`linear`; same parameters and state-dict keys."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return linear(input, self.weight, self.bias)


def route_linears(module: nn.Module) -> int:
    """Make every plain ``nn.Linear`` inside ``module`` a :class:`Linear` (in place: the same parameters,
    hooks and keys); returns how many. Subclasses of ``nn.Linear`` keep their own forward."""
    count = 0
    for m in module.modules():
        if type(m) is nn.Linear:
            m.__class__ = Linear
            count += 1
    return count
