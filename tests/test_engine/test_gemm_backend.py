"""The runner's ``gemm_backend`` key: the Linear products' backend for train / val, logged, restored after."""
import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from cnclip_mm.engine import CLIPRunner
from cnclip_mm.models import gemm
from tests.test_engine.conftest import tiny_runner_cfg, train_logging

pytestmark = pytest.mark.usefixtures('restore_gemm_choice')


class BackendProbe(Hook):
    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append(gemm.get_backend())

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append(gemm.get_backend())


@pytest.mark.parametrize('name', ['blas', 'onednn', None])
def test_runner_uses_and_logs_the_config_backend(tmp_path, tiny_data, name):
    cfg = tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=1)
    cfg.update(log_level='INFO', experiment_name=f'gemm_{name}_{tmp_path.name}')
    if name:
        cfg['gemm_backend'] = name
    with gemm.backend('blas' if name == 'onednn' else 'onednn'):  # the process's choice, restored after
        runner = CLIPRunner.from_cfg(Config(cfg))
        probe = BackendProbe()
        runner.register_hook(probe)
        messages = train_logging(runner)
        expected = name or 'onednn'
        assert probe.seen and set(probe.seen) == {expected}
        assert gemm.get_backend() == ('blas' if name == 'onednn' else 'onednn')
    label = 'oneDNN' if expected == 'onednn' else "PyTorch's BLAS"
    assert any(m.startswith(f'Linear matrix products on CPU: {label}') for m in messages), messages
