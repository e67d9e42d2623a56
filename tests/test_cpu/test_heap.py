"""Freed memory kept while a CPU run is on, handed back after it and never kept in a forked data worker.

The worker and after-the-block checks compare with a process that never entered the block, so they
hold whatever allocator the process has (glibc, or a preloaded jemalloc / tcmalloc)."""
import gc
import multiprocessing as mp

import numpy as np

from cnclip_mm.cpu import heap
from cnclip_mm.cpu.gc_freeze import frozen_gc

MIB = 1 << 20


def _rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4096


def _rss_rise_after_freeing(mib: int = 100, times: int = 3) -> int:
    """Resident bytes gained by allocating, touching and freeing ``times`` blocks of ``mib`` MiB."""
    before = _rss()
    for _ in range(times):
        block = np.ones(mib * MIB // 8)  # malloc + every page written (numpy: no OpenMP in a forked child)
        del block
    return _rss() - before


def _report(conn, enter_first: bool) -> None:
    if enter_first:  # enter and leave the block, then free as an ordinary process
        with heap.kept_freed_memory():
            pass
    conn.send((heap.active(), _rss_rise_after_freeing()))


def _forked(enter_first: bool = False):
    fork = mp.get_context('fork')
    parent, child = fork.Pipe()
    proc = fork.Process(target=_report, args=(child, enter_first))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def test_worker_forked_inside_the_block_frees_like_one_forked_outside():
    _, outside = _forked()
    with heap.kept_freed_memory():
        active, inside = _forked()
    assert not active
    assert inside <= outside + 32 * MIB, (inside / MIB, outside / MIB)


def test_after_the_block_memory_is_handed_back_as_before_it():
    _, never = _forked()
    active, after = _forked(enter_first=True)
    assert not active and after <= never + 32 * MIB, (after / MIB, never / MIB)


def test_inside_the_block_freed_memory_stays_for_the_next_step():
    with heap.kept_freed_memory() as note:
        if heap.glibc_malloc() is None:  # another allocator: the block changes nothing
            assert note is None and not heap.active()
            return
        assert 'M_MMAP_MAX=0' in note and heap.active()
        _rss_rise_after_freeing(times=5)  # the first steps grow the heap
        assert _rss_rise_after_freeing() < 8 * MIB  # later ones reuse it: no new pages
        with heap.kept_freed_memory() as inner:
            assert inner is None  # the outer block decides
    assert not heap.active()


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv('CNCLIP_KEEP_FREED', '0')
    with heap.kept_freed_memory() as note:
        assert note is None and not heap.active()


def test_gc_freeze_spares_old_objects_collects_new_ones_and_hands_everything_back():
    class Cycle:
        pass

    before = gc.get_freeze_count()
    with frozen_gc() as note:
        assert gc.get_freeze_count() > 0 and 'exempt from garbage collection' in note
        with frozen_gc() as inner:
            assert inner is None
        cycle = Cycle()
        cycle.me = cycle
        del cycle
        assert gc.collect() >= 1  # made inside the block: collected as usual
    assert gc.get_freeze_count() == before == 0
