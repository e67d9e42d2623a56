"""The fast path, applied from outside the model: a torch function mode that reroutes ``F.linear``.

The towers call plain modules (``nn.Linear``); while :class:`CpuFastPaths` is on the mode stack,
``F.linear`` on plain float32 CPU tensors, outside autocast and large enough to pay
(:func:`cnclip_mm.cpu.onednn.worth_it`), runs through oneDNN (:mod:`.onednn`). Every other call runs
as PyTorch's own. Hooks, wrappers and state-dict keys are untouched: no module is swapped. The mode
passes everything through under ``torch.compile`` / ``torch.export`` (ONNX), ``torch.jit.trace`` and
functorch transforms, and for tensors that are not plain CPU tensors (CUDA, meta, fake, DTensor and
other subclasses), so compiled, exported and accelerator runs see PyTorch's ops only. A process
forked while the mode is on (a DataLoader worker) leaves it (:func:`_leave_in_child`).
"""
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

from . import onednn

_PLAIN = (torch.Tensor, nn.Parameter)


def _plain_cpu(*tensors) -> bool:
    return all(t is None or (type(t) in _PLAIN and t.device.type == 'cpu') for t in tensors)


def _eager() -> bool:
    """Not inside a tracer, compiler, exporter or functorch transform."""
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling()
                or torch._C._are_functorch_transforms_active())


def _takes_onednn(input, weight, bias) -> bool:
    return (_plain_cpu(input, weight, bias) and not torch.is_autocast_enabled('cpu')
            and onednn.worth_it(input, weight) and (bias is None or bias.dtype == torch.float32))


class CpuFastPaths(TorchFunctionMode):
    """Send large float32 CPU ``F.linear`` calls through oneDNN (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and _eager():
            bound = dict(zip(('input', 'weight', 'bias'), args), **kwargs)
            if _takes_onednn(bound['input'], bound['weight'], bound.get('bias')):
                return onednn.linear(bound['input'], bound['weight'], bound.get('bias'))
        return func(*args, **kwargs)


def active() -> bool:
    """Whether a :class:`CpuFastPaths` is on this thread's mode stack."""
    return any(isinstance(m, CpuFastPaths) for m in _get_current_function_mode_stack())


def _leave_in_child() -> None:
    """In a forked child (a DataLoader worker), take :class:`CpuFastPaths` off the mode stack: the
    worker never leaves the parent's ``with`` block that would pop it."""
    stack = _get_current_function_mode_stack()
    if not any(isinstance(m, CpuFastPaths) for m in stack):
        return
    for _ in stack:
        torch._C._pop_torch_function_stack()
    for mode in stack:
        if not isinstance(mode, CpuFastPaths):
            torch._C._push_on_torch_function_stack(mode)


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_leave_in_child)
