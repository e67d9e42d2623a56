"""The runner's ``cpu_speed`` key: train / val / test run inside cpu_speed, logged, and leave no global state."""
import gc

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from cnclip_mm.cpu import heap, mode
from cnclip_mm.engine import CLIPRunner
from tests.test_engine.conftest import tiny_runner_cfg, train_logging


class SpeedProbe(Hook):
    """Whether the fast paths are on, the thread count, whether freed memory is kept and old objects are
    frozen, inside each loop."""

    def __init__(self):
        self.seen = {'train': set(), 'val': set(), 'test': set()}

    def _record(self, phase):
        self.seen[phase].add((mode.active(), torch.get_num_threads(), heap.active(), gc.get_freeze_count() > 0))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._record('train')

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self._record('val')

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self._record('test')


def _state():
    return torch.get_num_threads(), gc.get_freeze_count(), torch._C._len_torch_function_stack(), heap.active()


@pytest.mark.parametrize('choice', ['auto', False])
def test_train_val_test_run_inside_cpu_speed_and_restore_everything(tmp_path, tiny_data, choice):
    cfg = tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=1, val=True)
    cfg.update(log_level='INFO', experiment_name=f'cpu_speed_{choice}_{tmp_path.name}', cpu_speed=choice,
               test_dataloader=cfg['val_dataloader'], test_evaluator=cfg['val_evaluator'], test_cfg=dict())
    cfg['env_cfg'] = dict(cfg.get('env_cfg') or {}, num_threads=1)
    torch.set_num_threads(2)
    before = _state()
    runner = CLIPRunner.from_cfg(Config(cfg))
    probe = SpeedProbe()
    runner.register_hook(probe)
    messages = train_logging(runner)
    assert _state() == before
    runner.val()
    runner.test()
    assert _state() == before
    on = choice == 'auto'  # the tiny model is on the CPU
    kept = on and heap.glibc_malloc() is not None
    assert probe.seen == {phase: {(on, 1, kept, on)} for phase in ('train', 'val', 'test')}  # env_cfg.num_threads=1
    line = next(m for m in messages if m.startswith('cpu_speed'))
    assert line.startswith('cpu_speed on (auto: the model is on cpu)' if on else 'cpu_speed off (cpu_speed=False)')
    assert 'torch intra-op threads: 1 (requested)' in line


def test_a_bad_choice_names_the_key(tmp_path, tiny_data):
    cfg = tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=1)
    cfg['cpu_speed'] = 'fast'
    with pytest.raises(ValueError, match="config key cpu_speed must be 'auto', True or False, got 'fast'"):
        CLIPRunner.from_cfg(Config(cfg))
