"""keep_freed_memory: memory freed inside the block is reused without faulting it in again, handed back after."""
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from cnclip_mm.engine import CLIPRunner
from cnclip_mm.utils import freed_memory
from cnclip_mm.utils.freed_memory import keep_freed_memory
from tests.test_engine.conftest import tiny_runner_cfg, train_logging

REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter (glibc's settings are process-wide and stay once set): fault counts for a 64 MB
# tensor made, written and freed again, as a training step does with its activations, and the
# resident size while it is free. The block reports its own setting through `active()`.
PROBE = textwrap.dedent('''
    import json, re, resource, sys
    sys.path.insert(0, {repo!r})
    import torch
    from cnclip_mm.utils.freed_memory import keep_freed_memory

    def rss_mib():
        with open('/proc/self/status') as f:
            return int(re.search(r'VmRSS:\\s+(\\d+)', f.read()).group(1)) / 1024

    def faults_of_a_fresh_tensor():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.empty(16 * 2 ** 20)  # 64 MB: above glibc's mmap ceiling, like the word-embedding gradient
        t.fill_(1.0)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del t
        return faults

    out = dict(default=[faults_of_a_fresh_tensor() for _ in range(3)], rss_default=rss_mib())
    with keep_freed_memory(logger=None):
        out['kept'] = [faults_of_a_fresh_tensor() for _ in range(8)]
        out['rss_kept'] = rss_mib()
    out['rss_after'] = rss_mib()
    out['after'] = [faults_of_a_fresh_tensor() for _ in range(2)]
    print(json.dumps(out))
''')


def test_freed_memory_is_reused_inside_the_block_and_handed_back_after():
    import json
    proc = subprocess.run([sys.executable, '-c', PROBE.format(repo=str(REPO))], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    pages = 64 * 2 ** 20 // 4096
    # glibc's default: a fresh mapping every time, every page faulted in again
    assert min(out['default']) > 0.9 * pages, out
    # kept: the first allocations fault their pages in (until glibc's aligned blocks find a hole that
    # fits, 1-4 of them), then they reuse the memory the process holds
    assert out['kept'][0] > 0.9 * pages and max(out['kept'][-3:]) < 0.05 * pages, out
    # while free inside the block the process still holds the 64 MB; after the block it is handed back
    assert out['rss_kept'] - out['rss_default'] > 60, out
    assert out['rss_kept'] - out['rss_after'] > 60, out
    # and 64 MB blocks are fresh mappings again afterwards (above the 32 MB mmap threshold it leaves)
    assert min(out['after']) > 0.9 * pages, out


def test_nested_blocks_leave_it_to_the_outermost():
    assert not freed_memory.active()
    with keep_freed_memory(logger=None):
        with keep_freed_memory(logger=None):
            assert freed_memory.active()
        assert freed_memory.active()  # the inner block did not restore glibc's settings
        with keep_freed_memory(False):
            assert freed_memory.active()
    assert not freed_memory.active()
    with keep_freed_memory(False):
        assert not freed_memory.active()


def test_without_glibc_it_runs_the_block_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(freed_memory, '_glibc', lambda: None)
    ran = []
    with caplog.at_level(logging.INFO, logger='test_freed_memory'):
        with keep_freed_memory(logger=logging.getLogger('test_freed_memory')):
            ran.append(freed_memory.active())
    assert ran == [False]
    assert 'not kept (the C library is not glibc)' in caplog.text


def test_a_refused_setting_names_the_parameter(monkeypatch):
    class RefusingLibc:
        def mallopt(self, param, value):
            return 0

    monkeypatch.setattr(freed_memory, '_glibc', lambda: RefusingLibc())
    with pytest.raises(OSError, match='glibc refused mallopt\\(M_MMAP_MAX, 0\\)'):
        with keep_freed_memory(logger=None):
            pass
    assert not freed_memory.active()


class KeptProbe(Hook):
    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append(freed_memory.active())


@pytest.mark.parametrize('enabled', [True, False])
def test_runner_trains_with_freed_memory_kept_unless_the_config_says_no(tmp_path, tiny_data, enabled):
    cfg = tiny_runner_cfg(str(tmp_path), tiny_data, max_epochs=1)
    # a logger of its own at INFO (the setting is logged there), not one another test's runner made
    cfg.update(log_level='INFO', experiment_name=f'freed_memory_{enabled}_{tmp_path.name}')
    if not enabled:
        cfg['keep_freed_memory'] = False
    runner = CLIPRunner.from_cfg(Config(cfg))
    probe = KeptProbe()
    runner.register_hook(probe)
    messages = train_logging(runner)
    assert probe.seen and set(probe.seen) == {enabled}
    assert not freed_memory.active()
    assert any('freed memory is kept in the process while training' in m for m in messages) == enabled
