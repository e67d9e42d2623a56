"""Thread policy: the order of precedence, and a choice that does not depend on the machine's load."""
import builtins
import io
import os

import pytest

from cnclip_mm.cpu import auto_workers, choose_threads, resolve_auto_workers


def test_precedence_request_env_cores():
    assert choose_threads(3, env={'OMP_NUM_THREADS': '1'}).threads == 3
    plan = choose_threads(env={'OMP_NUM_THREADS': '1'}, cpus=8)
    assert (plan.threads, plan.source) == (1, 'OMP_NUM_THREADS')
    assert choose_threads(env={}, cpus=16, local_world_size=4).threads == 4
    assert choose_threads(env={'LOCAL_WORLD_SIZE': '2'}, cpus=8).threads == 4
    assert choose_threads(env={'LOCAL_WORLD_SIZE': '4'}, cpus=2).threads == 1  # never below 1
    assert choose_threads(env={}).threads == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='four' is not an integer"):
        choose_threads(env={'OMP_NUM_THREADS': 'four'})
    with pytest.raises(ValueError, match='threads=0: expected a positive thread count'):
        choose_threads(0)


def test_the_choice_ignores_the_machines_load(monkeypatch):
    quiet = choose_threads(env={})
    busy_stat = 'cpu  900000 0 100000 0 0 0 0 0 0 0\n'  # no idle time at all
    real_open = builtins.open

    def busy_open(path, *args, **kwargs):
        if str(path) in ('/proc/stat', '/proc/loadavg'):
            return io.StringIO(busy_stat if str(path) == '/proc/stat' else '64.0 64.0 64.0 9/999 1\n')
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, 'open', busy_open)
    monkeypatch.setattr(os, 'getloadavg', lambda: (64.0, 64.0, 64.0))
    assert choose_threads(env={}) == quiet


def test_auto_workers_follow_the_threads():
    assert (auto_workers(1), auto_workers(2), auto_workers(8)) == (1, 0, 0)
    loader = dict(batch_size=4, num_workers='auto', persistent_workers=True)
    fixed = dict(loader, num_workers=3)
    assert resolve_auto_workers(fixed, threads=1) is fixed  # a number is left alone
    assert resolve_auto_workers(loader, threads=1) == dict(loader, num_workers=1)
    assert resolve_auto_workers(loader, threads=2) == dict(loader, num_workers=0, persistent_workers=False)
    assert loader['num_workers'] == 'auto'  # the config itself is not changed
