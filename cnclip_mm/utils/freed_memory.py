"""Keep memory freed by one training step in the process for the next, instead of handing it back.

glibc hands the top of its heap back to the kernel whenever more than its trim threshold is free, and
serves blocks above its mmap threshold (at most 32 MB) from fresh mappings that are unmapped on free.
A training step frees hundreds of MB of activations and gradients, so the next step's fresh buffers
are faulted in again page by page, each page zeroed by the kernel: ViT-B/16 + RoBERTa-base at batch 8
on 2 cores made 90-148 K minor faults and 0.4-0.7 s of system time a step, and the matmuls writing
fresh outputs ran at half their speed (docs/speed.md, "Train step").

Inside :func:`keep_freed_memory` glibc serves every block from its heap (``M_MMAP_MAX`` 0) and does
not trim it (``M_TRIM_THRESHOLD`` 2 GiB), so after the first step a step reuses memory the process
already holds. The process keeps its peak until the block ends; then the free memory is handed back
(``malloc_trim``) and the thresholds are set to the ceiling glibc's own adaptive thresholds reach
(32 MB mmap, 64 MB trim: once set, glibc no longer adapts them). glibc only; elsewhere a no-op.
"""
import ctypes
import ctypes.util
import logging
from contextlib import contextmanager
from typing import Optional, Union

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

KEEP = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2 ** 31 - 1}
AFTER = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 * 2 ** 20, M_TRIM_THRESHOLD: 64 * 2 ** 20}

_depth = 0


def _glibc() -> Optional[ctypes.CDLL]:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_NAMES = {M_TRIM_THRESHOLD: 'M_TRIM_THRESHOLD', M_MMAP_THRESHOLD: 'M_MMAP_THRESHOLD', M_MMAP_MAX: 'M_MMAP_MAX'}


def _apply(libc: ctypes.CDLL, settings: dict) -> None:
    for param, value in settings.items():
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            raise OSError(f'glibc refused mallopt({_NAMES[param]}, {value})')


def hand_back() -> bool:
    """Return the free memory at the heap's top and in its holes to the kernel (``malloc_trim``); False
    when nothing went back or the C library is not glibc."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(ctypes.c_size_t(0)))


def active() -> bool:
    """Whether freed memory is being kept (inside :func:`keep_freed_memory`)."""
    return _depth > 0


@contextmanager
def keep_freed_memory(enabled: bool = True, logger: Union[str, 'logging.Logger', None] = 'current'):
    """Keep freed memory in the process until the block ends (see the module docstring).

    Nested blocks leave it to the outermost. ``logger``: where to say what was done (a logger or an
    mmengine logger name; None: silent).
    """
    global _depth
    if not enabled:
        yield
        return
    if _depth:  # an outer block keeps it already
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    libc = _glibc()
    if libc is None:
        if logger:
            _log('freed memory: not kept (the C library is not glibc)', logger)
        yield
        return
    _apply(libc, KEEP)
    _depth = 1
    if logger:
        _log('freed memory is kept in the process while training (glibc mallopt M_MMAP_MAX=0, '
             'M_TRIM_THRESHOLD=2 GiB; keep_freed_memory=False in the config turns this off)', logger)
    try:
        yield
    finally:
        _depth = 0
        _apply(libc, AFTER)
        hand_back()


def _log(message: str, logger) -> None:
    from mmengine.logging import print_log
    print_log(message, logger=logger)
