"""Activation checkpointing whose recomputation runs under the same torch function modes as the forward.

``torch.utils.checkpoint`` recomputes a layer inside backward, where the torch function mode stack of
the forward (any ``TorchFunctionMode`` a caller entered around the model: a profiler's, a tracer's,
:func:`cnclip_mm.cpu.cpu_speed`'s) is empty. A mode that sends a call another way would then save
other tensors in the recomputation than in the forward, and checkpointing stops with "a different
number of tensors was saved". Here the recomputation re-enters the modes the forward saw.
"""
import contextlib
from typing import Callable

import torch
from torch.overrides import _get_current_function_mode_stack
from torch.utils.checkpoint import checkpoint


class _Reentered:
    """Push ``modes`` for the recomputation; on exit take off whatever is above the depth found on entry
    (checkpoint ends a recomputation by raising from inside an op, and a mode may already be off then)."""

    def __init__(self, modes) -> None:
        self.modes = modes

    def __enter__(self) -> None:
        self.depth = torch._C._len_torch_function_stack()
        for mode in self.modes:
            torch._C._push_on_torch_function_stack(mode)

    def __exit__(self, *exc) -> None:
        while torch._C._len_torch_function_stack() > self.depth:
            torch._C._pop_torch_function_stack()


def _reentered(modes) -> Callable:
    return lambda: (contextlib.nullcontext(), _Reentered(modes))


def checkpointed(fn: Callable, *args):
    """``checkpoint(fn, *args, use_reentrant=False)``, recomputed under the forward's function modes
    (none under ``torch.compile``, which traces the checkpoint itself)."""
    modes = [] if torch.compiler.is_compiling() else _get_current_function_mode_stack()
    if not modes:
        return checkpoint(fn, *args, use_reentrant=False)
    return checkpoint(fn, *args, use_reentrant=False, context_fn=_reentered(modes))
