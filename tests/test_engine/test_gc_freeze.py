"""gc_freeze: the runner's train / val / test run with the heap alive at their start frozen, then hand it back."""
import gc
import weakref

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from cnclip_mm.engine import CLIPRunner
from cnclip_mm.utils.gc_freeze import frozen_heap
from tests.test_engine.conftest import tiny_runner_cfg


class FreezeProbe(Hook):
    """``gc.get_freeze_count()`` seen inside the training and the validation loops."""

    def __init__(self):
        self.train, self.val = [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.train.append(gc.get_freeze_count())

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.val.append(gc.get_freeze_count())


class _Node:
    pass


def _cycle():
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a


@pytest.mark.parametrize('enabled', [True, False])
def test_runner_train_and_val_run_frozen(tmp_path, tiny_data, enabled):
    assert gc.get_freeze_count() == 0
    cfg = tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=1, val=True)
    if not enabled:
        cfg['gc_freeze'] = False
    runner = CLIPRunner.from_cfg(Config(cfg))
    probe = FreezeProbe()
    runner.register_hook(probe)
    runner.train()
    assert probe.train and probe.val
    if enabled:  # the model, datasets and imports made before train() are frozen throughout
        assert min(probe.train) > 10000 and min(probe.val) > 10000
    else:
        assert set(probe.train) == set(probe.val) == {0}
    assert gc.get_freeze_count() == 0  # handed back
    probe.val.clear()
    runner.val()
    assert (min(probe.val) > 10000) if enabled else set(probe.val) == {0}
    assert gc.get_freeze_count() == 0


def test_frozen_garbage_is_collected_after_the_block():
    ref = weakref.ref(_cycle())  # a cycle that is already garbage: only the cyclic collector frees it
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert ref() is not None  # frozen: skipped by collections inside the block
        inner = weakref.ref(_cycle())
        gc.collect()
        assert inner() is None  # objects made inside the block are collected as usual
    gc.collect()
    assert ref() is None and gc.get_freeze_count() == 0


def test_frozen_heap_nesting_errors_and_a_caller_that_froze_first():
    # Watched through garbage cycles made before a freeze, not through gc.get_freeze_count(): frozen
    # objects freed by reference counting (in any thread) leave the count, so it may drop at any time.
    ref = weakref.ref(_cycle())
    with pytest.raises(RuntimeError, match='boom'):
        with frozen_heap():
            with frozen_heap():  # inner block: leaves the freezing to the outer one
                pass
            gc.collect()
            assert ref() is not None and gc.get_freeze_count() > 0  # still frozen after the inner block
            raise RuntimeError('boom')
    gc.collect()
    assert ref() is None and gc.get_freeze_count() == 0  # unfrozen on the error too
    ref = weakref.ref(_cycle())
    gc.freeze()
    try:
        with frozen_heap():
            pass
        gc.collect()
        assert ref() is not None and gc.get_freeze_count() > 0  # the caller's freeze is the caller's to undo
    finally:
        gc.unfreeze()
    gc.collect()
    assert ref() is None
    with frozen_heap(enabled=False):
        assert gc.get_freeze_count() == 0
