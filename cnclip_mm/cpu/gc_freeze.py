"""Keep Python's cyclic garbage collector off the objects that outlive a run.

torch, transformers and mmengine leave about a million long-lived objects (modules, functions, types)
that every full collection walks again: 0.37 s a pass on the 2-core development machine, and mmengine
forces one each time it builds a dataset (``BaseDataset._serialize_data``), six in the demo. Frozen
(``gc.freeze``) they are skipped; objects made inside the block are collected as usual, and on exit
everything is handed back (``gc.unfreeze``), so a frozen object that became garbage is collected
later, not leaked. A block inside another, or under a caller that froze first, leaves it to them.
"""
import gc
from contextlib import contextmanager
from typing import Iterator, Optional


@contextmanager
def frozen_gc() -> Iterator[Optional[str]]:
    """Exempt every object alive on entry from garbage collection until the block ends. Yields what it
    did, for the log, or None when an outer freeze decides."""
    if gc.get_freeze_count():  # walks the frozen objects: free when none are, as on every first entry
        yield None
        return
    gc.freeze()
    try:
        yield 'the objects alive on entry exempt from garbage collection (gc.freeze)'
    finally:
        gc.unfreeze()
