"""CPU thread counts from what a command says, never from how busy the machine is.

PyTorch's default (one intra-op thread per core in every process) oversubscribes when several ranks
share a machine: OpenMP threads wait for each other at every parallel region. :func:`choose_threads`
decides one count per process, in this order:

1. an explicit request (``tools/*.py --threads N`` or the config key ``env_cfg.num_threads``);
2. ``OMP_NUM_THREADS`` if the user set it;
3. the cores in this process's affinity mask divided among the local ranks (``LOCAL_WORLD_SIZE``).

Nothing here samples the machine's load, so a command makes the same choices on a quiet and on a
busy machine. Thread counts change speed only; ``num_workers='auto'`` (:func:`auto_workers`) follows
the same count, so a command also loads its data the same way everywhere it has the same cores.
"""
import os
from dataclasses import dataclass
from typing import Mapping, Optional

ENV_VAR = 'OMP_NUM_THREADS'
AUTO = 'auto'  # a dataloader's num_workers chosen from the threads (auto_workers)


@dataclass
class ThreadPlan:
    """The chosen intra-op thread count and the reason for it."""

    threads: int
    source: str
    detail: str = ''

    def describe(self) -> str:
        extra = f', {self.detail}' if self.detail else ''
        return f'torch intra-op threads: {self.threads} ({self.source}{extra})'


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _positive_int(value, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f'{what}={value!r} is not an integer') from err
    if number < 1:
        raise ValueError(f'{what}={value!r}: expected a positive thread count')
    return number


def choose_threads(requested: Optional[int] = None, local_world_size: Optional[int] = None,
                   cpus: Optional[int] = None, env: Optional[Mapping[str, str]] = None) -> ThreadPlan:
    """Decide the intra-op thread count (order of precedence: the module docstring).

    Args:
        requested: an explicit count (``--threads`` / ``env_cfg.num_threads``); None means choose.
        local_world_size: processes sharing this machine (default: ``LOCAL_WORLD_SIZE`` or 1).
        cpus: usable cores (default: the affinity mask).
        env: where ``OMP_NUM_THREADS`` / ``LOCAL_WORLD_SIZE`` are read (default ``os.environ``).

    Returns:
        A :class:`ThreadPlan`.
    """
    env = os.environ if env is None else env
    if requested is not None:
        return ThreadPlan(_positive_int(requested, 'threads'), 'requested')
    if env.get(ENV_VAR):
        return ThreadPlan(_positive_int(env[ENV_VAR], ENV_VAR), ENV_VAR)
    cpus = cpus or available_cpus()
    ranks = local_world_size or _positive_int(env.get('LOCAL_WORLD_SIZE') or 1, 'LOCAL_WORLD_SIZE')
    return ThreadPlan(max(1, cpus // ranks), 'cores', f'{cpus} core(s) / {ranks} local rank(s)')


def auto_workers(threads: int) -> int:
    """``num_workers='auto'``: 0 (load in the main process) with 2+ intra-op threads, else 1.

    Why (tools/run_demo.py on 2 cores): the second core was worth more to the matmuls than to a
    loader process beside one thread (54 vs 60 s of training); with one thread a worker process
    overlaps loading with compute instead of queueing behind it.
    """
    return 0 if threads >= 2 else 1


def resolve_auto_workers(loader_cfg: dict, threads: int) -> dict:
    """A copy of a dataloader config with ``num_workers='auto'`` made a number (others unchanged).

    ``persistent_workers`` is dropped to False with 0 workers (the DataLoader rejects it). Logged.
    """
    if not isinstance(loader_cfg, dict) or loader_cfg.get('num_workers') != AUTO:
        return loader_cfg
    workers = auto_workers(threads)
    resolved = dict(loader_cfg, num_workers=workers)
    if not workers:
        resolved['persistent_workers'] = False
    from mmengine.logging import print_log
    where = 'in a worker process beside it' if workers else 'in the main process'
    print_log(f'dataloader num_workers auto -> {workers} ({threads} intra-op thread(s): loading {where})',
              logger='current')
    return resolved
