"""The fast paths, applied from outside the model: a torch function mode that reroutes three calls.

The towers call plain modules (``nn.Linear``, ``nn.Dropout``, ``F.scaled_dot_product_attention``); while
:class:`CpuFastPaths` is on the mode stack, those calls on plain CPU tensors go to :mod:`.onednn` (large
float32 products, outside autocast), :mod:`.dropout` (training masks, also those of attention's
probabilities, through :mod:`.attention`) and :mod:`.attention` (short attention written out, where
torch's CPU flash kernel spends more on its blocking and threads than on the math). Every other call
runs as PyTorch's own. Hooks, wrappers and state-dict keys are untouched: no module is swapped. The mode
passes everything through under ``torch.compile`` / ``torch.export`` (ONNX), ``torch.jit.trace`` and
functorch transforms, and for tensors that are not plain CPU tensors (CUDA, meta, fake, DTensor and other
subclasses), so compiled, exported and accelerator runs see PyTorch's ops only. A process forked while
the mode is on (a DataLoader worker) leaves it (:func:`_leave_in_child`).
"""
import contextlib
import os
from typing import Iterable, Iterator, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

from . import attention, dropout, onednn

PATHS = ('onednn', 'dropout', 'short_attention')
T = TypeVar('T')
_PLAIN = (torch.Tensor, nn.Parameter)


def _plain_cpu(*tensors) -> bool:
    return all(t is None or (type(t) in _PLAIN and t.device.type == 'cpu') for t in tensors)


def _eager() -> bool:
    """Not inside a tracer, compiler, exporter or functorch transform."""
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling()
                or torch._C._are_functorch_transforms_active())


class CpuFastPaths(TorchFunctionMode):
    """Reroute ``F.linear``, ``F.dropout`` and ``F.scaled_dot_product_attention`` on CPU (module docstring).

    Args:
        paths: which of :data:`PATHS` to take (``'onednn'``: large fp32 Linear products; ``'dropout'``:
            training dropout's masks, of ``F.dropout`` and of SDPA's ``dropout_p``; ``'short_attention'``:
            fp32 SDPA without dropout over at most :data:`.attention.SHORT_KEYS` keys, written out).
    """

    def __init__(self, paths: Iterable[str] = PATHS) -> None:
        super().__init__()
        self.paths = frozenset(paths)
        unknown = self.paths - set(PATHS)
        if unknown:
            raise ValueError(f'unknown CPU fast path(s) {sorted(unknown)}: expected some of {PATHS}')
        self._routes = {}
        if 'onednn' in self.paths:
            self._routes[F.linear] = self._linear
        if 'dropout' in self.paths:
            self._routes[F.dropout] = self._dropout
        if self.paths & {'dropout', 'short_attention'}:
            self._routes[F.scaled_dot_product_attention] = self._attention

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        route = self._routes.get(func)
        if route is not None and _eager():
            out = route(*args, **kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)

    @staticmethod
    def _linear(input, weight, bias=None):
        if (not _plain_cpu(input, weight, bias) or torch.is_autocast_enabled('cpu')
                or not onednn.worth_it(input, weight) or (bias is not None and bias.dtype != torch.float32)):
            return NotImplemented
        return onednn.linear(input, weight, bias)

    @staticmethod
    def _dropout(input, p=0.5, training=True, inplace=False):
        # Autocast does not cast dropout, so its masks are these under autocast too. In-place dropout
        # stays torch's: this path makes a new tensor.
        if not training or inplace or not 0 < p <= 1 or not _plain_cpu(input) or not input.is_floating_point():
            return NotImplemented
        return dropout.dropout(input, p)

    def _attention(self, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                   enable_gqa=False):
        path = 'dropout' if dropout_p > 0 else 'short_attention'
        if (path not in self.paths or is_causal or enable_gqa or not _plain_cpu(query, key, value, attn_mask)
                or torch.is_autocast_enabled('cpu') or query.dtype != torch.float32
                or (path == 'short_attention' and key.shape[-2] > attention.SHORT_KEYS)):
            return NotImplemented
        return attention.written_out(query, key, value, attn_mask, dropout_p, scale)


def active() -> bool:
    """Whether a :class:`CpuFastPaths` is on this thread's mode stack."""
    return any(isinstance(m, CpuFastPaths) for m in _get_current_function_mode_stack())


def _restack(modes) -> None:
    """Make ``modes`` this thread's whole torch function mode stack (bottom first)."""
    for _ in range(torch._C._len_torch_function_stack()):
        torch._C._pop_torch_function_stack()
    for mode in modes:
        torch._C._push_on_torch_function_stack(mode)


def _without_fast_paths(stack) -> list:
    return [m for m in stack if not isinstance(m, CpuFastPaths)]


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Run the block with :class:`CpuFastPaths` off this thread's mode stack (other modes stay), then
    put the stack back as it was."""
    stack = _get_current_function_mode_stack()
    others = _without_fast_paths(stack)
    if len(others) == len(stack):
        yield
        return
    _restack(others)
    try:
        yield
    finally:
        _restack(stack)


def fetched_outside(batches: Iterable[T]) -> Iterator[T]:
    """The items of ``batches``, each fetched with the fast paths suspended: loading in the main process
    (``num_workers=0``) calls none of the rerouted functions but would pay the mode's dispatch on every
    torch call of the pipeline and the collate."""
    batches = iter(batches)
    while True:
        with suspended():
            try:
                batch = next(batches)
            except StopIteration:
                return
        yield batch


def _leave_in_child() -> None:
    """In a forked child (a DataLoader worker), take :class:`CpuFastPaths` off the mode stack: the
    worker never leaves the parent's ``with`` block that would pop it."""
    stack = _get_current_function_mode_stack()
    others = _without_fast_paths(stack)
    if len(others) != len(stack):
        _restack(others)


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_leave_in_child)
