"""Keep the memory one training step frees for the next, instead of handing it back to the kernel.

glibc serves blocks above its mmap threshold from fresh mappings, unmapped on free, and trims its heap's
top whenever more than the trim threshold is free. A CPU training step frees its activations and
gradients, so the next step faults the same memory back in page by page, each page zeroed by the
kernel: thousands of minor faults a step, system time, and products writing into cold pages.
Inside :func:`kept_freed_memory` glibc serves every block from its heap (``M_MMAP_MAX`` 0) and never
trims it (``M_TRIM_THRESHOLD`` 2 GiB - 1): from the second step on, a step reuses what the process holds.

Put back on exit, and in a process forked inside the block (a DataLoader worker) at once: the free
memory goes back (``malloc_trim``) and the thresholds become the ceiling that glibc's own adaptive
thresholds reach (32 MiB mmap, 64 MiB trim); glibc has no call that resumes adapting them. Only where
``malloc`` is glibc's: under musl or a preloaded jemalloc / tcmalloc the block changes nothing.
``CNCLIP_KEEP_FREED=0`` turns it off (A/B runs).
"""
import ctypes
import functools
import os
from contextlib import contextmanager
from typing import Iterator, Optional

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
KEEP = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2 ** 31 - 1}
AFTER = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20}
_NAMES = {M_TRIM_THRESHOLD: 'M_TRIM_THRESHOLD', M_MMAP_THRESHOLD: 'M_MMAP_THRESHOLD', M_MMAP_MAX: 'M_MMAP_MAX'}

_kept = False


@functools.cache
def glibc_malloc() -> Optional[ctypes.CDLL]:
    """glibc, when the process's ``malloc`` is glibc's own; None otherwise (another C library, or an
    allocator preloaded in front of it, whose memory mallopt does not govern). Looked up once per
    process: never again on a block's entry, nor in a forked child (no loader call after a fork)."""
    try:
        libc = ctypes.CDLL('libc.so.6')
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        process_malloc = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
    return libc if process_malloc == ctypes.cast(libc.malloc, ctypes.c_void_p).value else None


def _apply(libc: ctypes.CDLL, settings: dict) -> None:
    for param, value in settings.items():
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            raise OSError(f'glibc refused mallopt({_NAMES[param]}, {value})')


def _hand_back(libc: ctypes.CDLL) -> None:
    _apply(libc, AFTER)
    libc.malloc_trim(ctypes.c_size_t(0))


def active() -> bool:
    """Whether this process is keeping freed memory (inside :func:`kept_freed_memory`)."""
    return _kept


@contextmanager
def kept_freed_memory() -> Iterator[Optional[str]]:
    """Keep freed memory in the process until the block ends (module docstring). Yields what it does,
    for the log, or None when it does nothing (not glibc, switched off, or an outer block keeps it)."""
    global _kept
    libc = glibc_malloc()
    if _kept or libc is None or os.environ.get('CNCLIP_KEEP_FREED', '1') == '0':
        yield None
        return
    _apply(libc, KEEP)
    _kept = True
    try:
        yield 'freed memory kept in the process (glibc M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)'
    finally:
        _kept = False
        _hand_back(libc)


def _leave_in_child() -> None:
    """A process forked inside the block never leaves it: put glibc's settings back there at once."""
    global _kept
    if _kept:
        _kept = False
        _hand_back(glibc_malloc())


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_leave_in_child)
