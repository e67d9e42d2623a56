"""``cpu_speed``: the one switch for everything CPU-specific, restored when its block ends."""
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional, Union

import torch

from . import heap, mode, onednn
from .gc_freeze import frozen_gc
from .threads import choose_threads

CHOICES = ('auto', True, False)


@dataclass
class CpuSpeed:
    """What a :func:`cpu_speed` block switched on, and why (``describe()`` is the log line)."""

    on: bool
    why: str
    notes: list = field(default_factory=list)

    def describe(self) -> str:
        return '; '.join([f'cpu_speed {"on" if self.on else "off"} ({self.why})'] + self.notes)


def check_choice(enabled, what: str = 'cpu_speed') -> None:
    """Raise a ValueError naming ``what`` unless ``enabled`` is ``'auto'``, True or False."""
    if not any(enabled is c or (isinstance(c, str) and enabled == c) for c in CHOICES):
        raise ValueError(f"{what} must be 'auto', True or False, got {enabled!r}")


def _decide(enabled: Union[str, bool], device) -> tuple:
    check_choice(enabled)
    device_type = torch.device(device).type
    if enabled == 'auto':
        return device_type == 'cpu', f"auto: the model is on {device_type}"
    return bool(enabled), f'cpu_speed={enabled}'


@contextmanager
def cpu_speed(enabled: Union[str, bool] = 'auto', device: Union[str, torch.device] = 'cpu',
              threads: Optional[int] = None, logger=None) -> Iterator[CpuSpeed]:
    """Run the block with the CPU fast path and thread policy; put every global setting back after.

    Inside (when on): :class:`cnclip_mm.cpu.mode.CpuFastPaths` draws training dropout masks with
    :mod:`cnclip_mm.cpu.dropout` (fast, and the same on every CPU vendor for one seed; attention with
    dropout is written out to use them, :mod:`cnclip_mm.cpu.attention`) and sends large float32 Linear
    products through oneDNN where :func:`cnclip_mm.cpu.onednn.resolve` chooses it; the torch intra-op
    thread count follows :func:`cnclip_mm.cpu.threads.choose_threads`; memory that a step frees stays
    in the process for the next (:mod:`cnclip_mm.cpu.heap`); the objects alive on entry are exempt from
    garbage collection (:mod:`cnclip_mm.cpu.gc_freeze`). On exit the thread count is restored, the mode
    popped, the kept memory handed back and the collector given every object again. A block inside
    another one that is on changes nothing (the outer one decides).

    Args:
        enabled: ``'auto'`` (on when ``device`` is a CPU), True or False.
        device: where the model runs.
        threads: an explicit intra-op thread count (``--threads`` / ``env_cfg.num_threads``); applied
            even when cpu_speed is off, since the user asked for it.
        logger: where to say what is on and why (a logger or an mmengine logger name; None: silent).

    Yields:
        A :class:`CpuSpeed` describing the choice.
    """
    on, why = _decide(enabled, device)
    state = CpuSpeed(on, why)
    if on and mode.active():
        on, state = False, CpuSpeed(False, 'an enclosing cpu_speed block is on and decides')
    with ExitStack() as restore:
        if on or threads is not None:
            plan = choose_threads(threads)
            saved = torch.get_num_threads()
            restore.callback(torch.set_num_threads, saved)
            torch.set_num_threads(plan.threads)
            state.notes.append(plan.describe())
        if on:
            use, reason = onednn.resolve()  # its probe runs here, never inside a forward or a tracer
            state.notes.append(f'Linear products by {"oneDNN" if use else "BLAS"} ({reason}); dropout masks '
                               'by SFC64')
            paths = [p for p in mode.PATHS if use or p != 'onednn']
            restore.enter_context(mode.CpuFastPaths(paths))
            for note in (restore.enter_context(heap.kept_freed_memory()), restore.enter_context(frozen_gc())):
                if note:
                    state.notes.append(note)
        if logger is not None:
            from mmengine.logging import print_log
            print_log(state.describe(), logger=logger)
        yield state
