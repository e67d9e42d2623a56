"""Runners made within one second in one process keep their own logger, message hub and checkpoints."""
import os.path as osp
import time

from mmengine.config import Config

from cnclip_mm.engine import CLIPRunner
from tests.test_engine.conftest import tiny_runner_cfg


def test_second_runner_in_the_same_second_keeps_its_own_instances_and_checkpoints(tmp_path, tiny_data,
                                                                                   monkeypatch):
    frozen = time.time()
    monkeypatch.setattr(time, 'time', lambda: frozen)  # both runners read the same second
    runners = []
    for name in ('first', 'second'):
        cfg = tiny_runner_cfg(str(tmp_path / name), tiny_data, max_epochs=2)
        cfg['default_hooks']['checkpoint'].update(max_keep_ckpts=1)
        runners.append(CLIPRunner.from_cfg(Config(cfg)))
        runners[-1].train()
    first, second = runners
    second_of_day = time.strftime('%Y%m%d_%H%M%S', time.localtime(frozen))
    assert first.timestamp.startswith(second_of_day) and second.timestamp.startswith(second_of_day)
    assert second.timestamp != first.timestamp  # '_2', '_3', ...: earlier runners may hold some
    assert second.experiment_name != first.experiment_name
    assert second.message_hub is not first.message_hub and second.logger is not first.logger
    # each run keeps its own last checkpoint; the second's log is in its own folder
    for name in ('first', 'second'):
        assert osp.isfile(tmp_path / name / 'epoch_2.pth')
        assert not osp.exists(tmp_path / name / 'epoch_1.pth')
    assert osp.isfile(tmp_path / 'second' / second.timestamp / f'{second.timestamp}.log')
