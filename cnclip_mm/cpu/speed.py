"""``cpu_speed``: the one switch for everything CPU-specific, restored when its block ends."""
import gc
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Union

import torch

from . import mode, onednn
from .attention import SHORT_KEYS
from .threads import choose_threads

PATHS = mode.PATHS + ('gc_freeze',)
CHOICES = ('auto', True, False)


@dataclass
class CpuSpeed:
    """What a :func:`cpu_speed` block switched on, and why (``describe()`` is the log line)."""

    on: bool
    why: str
    paths: tuple = ()
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
              threads: Optional[int] = None, paths: Iterable[str] = PATHS,
              logger=None) -> Iterator[CpuSpeed]:
    """Run the block with the CPU fast paths and thread policy; put every global setting back after.

    Inside (when on): :class:`cnclip_mm.cpu.mode.CpuFastPaths` reroutes Linear products, dropout and
    short attention on CPU tensors; the torch intra-op thread count follows
    :func:`cnclip_mm.cpu.threads.choose_threads`. On exit the thread count is restored and the mode
    popped. A block inside another one that is on changes nothing (the outer one decides).

    Args:
        enabled: ``'auto'`` (on when ``device`` is a CPU), True or False.
        device: where the model runs.
        threads: an explicit intra-op thread count (``--threads`` / ``env_cfg.num_threads``); applied
            even when the paths are off, since the user asked for it.
        paths: which of :data:`PATHS` to take (all by default; benchmarks/cpu_speed.py leaves each out).
        logger: where to say what is on and why (a logger or an mmengine logger name; None: silent).

    Yields:
        A :class:`CpuSpeed` describing the choice.
    """
    on, why = _decide(enabled, device)
    paths = tuple(paths)
    unknown = set(paths) - set(PATHS)
    if unknown:
        raise ValueError(f'unknown cpu_speed path(s) {sorted(unknown)}: expected some of {PATHS}')
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
            routed = [p for p in paths if p in mode.PATHS]
            if 'onednn' in routed:
                use, reason = onednn.resolve()
                state.notes.append(f'Linear products by {"oneDNN" if use else "BLAS"} ({reason})')
                if not use:
                    routed.remove('onednn')
            if 'dropout' in routed:
                state.notes.append('dropout masks from SFC64 (the same on every CPU)')
            if 'attention' in routed:
                state.notes.append(f'attention written out up to {SHORT_KEYS} keys or with dropout')
            restore.enter_context(mode.CpuFastPaths(routed))
            if 'gc_freeze' in paths and not gc.get_freeze_count():
                gc.freeze()
                restore.callback(gc.unfreeze)
                state.notes.append('objects alive on entry exempt from the cyclic GC')
            state.paths = tuple(routed) + (('gc_freeze',) if 'gc_freeze' in paths else ())
        if logger is not None:
            from mmengine.logging import print_log
            print_log(state.describe(), logger=logger)
        yield state
