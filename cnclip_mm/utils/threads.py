"""CPU thread counts that do not oversubscribe: intra-op threads per process, one thread per loader worker.

PyTorch's default (one intra-op thread per core in every process) collapses when the cores are shared:
OpenMP threads wait on each other at every parallel region, so one descheduled thread stalls them all.
:func:`configure_threads` picks the count once per process, applies it, and says why in the log:

1. an explicit request (``tools/*.py --threads N`` or the config key ``env_cfg.num_threads``) wins;
2. else ``OMP_NUM_THREADS`` if the user set it;
3. else ``auto``: the cores this process may use (affinity) divided among the local ranks
   (``LOCAL_WORLD_SIZE`` under torchrun), minus the busiest dataloader's workers, and no more than the
   cores found idle during a short sample of ``/proc/stat`` (other jobs on the machine).

Dataloader workers run :func:`worker_init_fn`: one torch thread and one OpenCV thread each, plus
mmengine's per-worker seeding.

A dataloader may say ``num_workers='auto'`` (the demo does): :func:`auto_workers` loads in the main
process when it computes with 2 or more threads, else in one worker process beside it. Resolved when
the runner builds the loader (:func:`resolve_auto_workers`), after the thread count is applied.
"""
import os
import random
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from cnclip_mm.registry import FUNCTIONS

ENV_VAR = 'OMP_NUM_THREADS'
AUTO = 'auto'  # a dataloader's num_workers chosen with the threads (auto_workers)
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@dataclass
class ThreadPlan:
    """The chosen intra-op thread count and the reason for it."""

    threads: int
    source: str
    detail: str = ''

    def describe(self) -> str:
        extra = f' ({self.detail})' if self.detail else ''
        return (f'torch intra-op threads: {self.threads} [{self.source}]{extra}; dataloader workers: '
                f'1 torch + 1 OpenCV thread each. Override with --threads N, env_cfg.num_threads or '
                f'{ENV_VAR}.')


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cpu_times() -> Optional[tuple]:
    try:
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])


def idle_cpus(sample_s: float = 0.25) -> Optional[float]:
    """Cores left idle by everything running on the machine, sampled over ``sample_s``; None off Linux."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_s)
    after = _cpu_times()
    total = after[1] - before[1]
    if total <= 0:
        return None
    return (after[0] - before[0]) / total * (os.cpu_count() or 1)


def max_workers(cfg) -> int:
    """The largest ``num_workers`` of the config's dataloaders (0 when none; ``'auto'`` counts as 0)."""
    counts = [(cfg.get(key) or {}).get('num_workers', 0) or 0 for key in _LOADERS]
    return max((int(c) for c in counts if c != AUTO), default=0)


def auto_workers(threads: int) -> int:
    """``num_workers='auto'``: 0 (load in the main process) with 2+ intra-op threads, else 1.

    Why (tools/run_demo.py on 2 cores, docs/speed.md): on a quiet machine the second core is worth
    more to the matmuls than to a loader process beside one thread (54 vs 60 s of training); with
    other jobs holding the cores, one thread is all the main process gets, and a worker is a
    process of its own that the scheduler gives its own share, so loading overlaps compute instead
    of queueing behind it (157 vs 200 s with 4 busy processes).
    """
    return 0 if threads >= 2 else 1


def resolve_auto_workers(loader_cfg: dict, threads: Optional[int] = None) -> dict:
    """A copy of a dataloader config with ``num_workers='auto'`` made a number (others unchanged).

    ``threads`` defaults to the intra-op threads already applied (``torch.get_num_threads()``).
    ``persistent_workers`` is dropped to False with 0 workers (the DataLoader rejects it). Logged.
    """
    if not isinstance(loader_cfg, dict) or loader_cfg.get('num_workers') != AUTO:
        return loader_cfg
    threads = torch.get_num_threads() if threads is None else threads
    workers = auto_workers(threads)
    resolved = dict(loader_cfg, num_workers=workers)
    if not workers:
        resolved['persistent_workers'] = False
    from mmengine.logging import print_log
    where = 'in a worker process beside it' if workers else 'in the main process'
    print_log(f'dataloader num_workers auto -> {workers} ({threads} intra-op thread{"s" if threads > 1 else ""}: '
              f'loading {where})', logger='current')
    return resolved


def choose_threads(requested: Optional[int] = None, num_workers: int = 0,
                   local_world_size: Optional[int] = None, cpus: Optional[int] = None,
                   idle: Optional[float] = None, env: Optional[dict] = None) -> ThreadPlan:
    """Decide the intra-op thread count (see the module docstring for the order of precedence).

    Args:
        requested: an explicit count (flag or config); ``None`` or 0 means choose.
        num_workers: dataloader workers of this process, which need cores of their own.
        local_world_size: processes sharing this machine (default: ``LOCAL_WORLD_SIZE`` or 1).
        cpus: usable cores (default: the affinity mask).
        idle: cores idle on the machine right now (default: measured; pass a number in tests).
        env: environment to read ``OMP_NUM_THREADS`` / ``LOCAL_WORLD_SIZE`` from (default ``os.environ``).

    Returns:
        A :class:`ThreadPlan`.
    """
    env = os.environ if env is None else env
    if requested:
        if requested < 0:
            raise ValueError(f'thread count must be positive, got {requested}')
        return ThreadPlan(int(requested), 'requested')
    if env.get(ENV_VAR):
        try:
            value = int(env[ENV_VAR])
        except ValueError as err:
            raise ValueError(f'{ENV_VAR}={env[ENV_VAR]!r} is not an integer') from err
        if value > 0:
            return ThreadPlan(value, ENV_VAR)
    cpus = cpus or available_cpus()
    ranks = local_world_size or int(env.get('LOCAL_WORLD_SIZE', 1) or 1)
    share = max(1, cpus // max(1, ranks) - num_workers)
    detail = f'{cpus} cores / {ranks} local rank(s) - {num_workers} worker(s)'
    if idle is None and share > 1:
        idle = idle_cpus()
    if idle is not None and share > 1:
        free = max(1, int(idle / max(1, ranks) + 0.5))
        if free < share:
            detail += f'; machine busy, {idle:.1f} cores idle'
            share = free
    return ThreadPlan(share, 'auto', detail)


@FUNCTIONS.register_module(name='threads_worker_init')
def worker_init_fn(worker_id: int, num_workers: int = 0, seed: Optional[int] = None,
                   torch_threads: int = 1, opencv_threads: int = 1,
                   disable_subprocess_warning: bool = False) -> None:
    """Dataloader worker start: few threads per worker, then mmengine's seeding.

    Registered in mmengine's ``FUNCTIONS`` so a config can name it; :func:`apply_to_config` puts it
    in every dataloader of a config.
    """
    if not num_workers:  # not given (e.g. num_workers='auto' in the config): the loader's own count
        info = torch.utils.data.get_worker_info()
        num_workers = info.num_workers if info is not None else 0
    torch.set_num_threads(torch_threads)
    os.environ[ENV_VAR] = str(torch_threads)  # for libraries that start their pools later
    try:
        import cv2
        cv2.setNumThreads(opencv_threads)
    except ImportError:
        pass
    if seed is not None:
        from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init
        from mmengine.dist import get_rank
        mmengine_worker_init(worker_id, num_workers, get_rank(), seed, disable_subprocess_warning)
    else:  # like torch's own seeding: distinct numpy/random streams per worker and epoch
        base = torch.initial_seed() % 2 ** 32
        np.random.seed(base)
        random.seed(base)


def apply_to_config(cfg, requested: Optional[int] = None) -> ThreadPlan:
    """Choose and apply the main process's threads; give every dataloader of ``cfg`` the worker init.

    ``requested`` (a ``--threads`` flag) falls back to ``cfg.env_cfg.num_threads``. A dataloader that
    already names a ``worker_init_fn`` keeps it.
    """
    env_cfg = cfg.get('env_cfg') or {}
    plan = choose_threads(requested or env_cfg.get('num_threads'), num_workers=max_workers(cfg))
    torch.set_num_threads(plan.threads)
    seed = (cfg.get('randomness') or {}).get('seed')
    for key in _LOADERS:
        loader = cfg.get(key)
        if loader and 'worker_init_fn' not in loader:
            loader['worker_init_fn'] = dict(type='cnclip_mm.threads_worker_init', seed=seed)
    from mmengine.logging import print_log
    print_log(plan.describe(), logger='current')
    return plan
