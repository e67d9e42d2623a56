"""Bad-sample policy shared by every dataset: raise a clear error, or skip and count.

Skips may happen in DataLoader worker processes, so the counts and the first examples live in
shared memory created in the main process; the main process (``BadSampleReportHook`` or
``check_dataset.py``) reads and logs them. In distributed training every rank's counts and examples
are gathered to rank 0, whose logger is the one that prints warnings.
"""
import logging
import multiprocessing as mp
from typing import List

import torch.utils.data
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.logging import print_log

POLICIES = ('error', 'skip')


class BadSampleError(ValueError):
    """A sample (file, line or key) is unusable; the message names where and why."""


class BadSampleLog:
    """Applies the ``on_bad_sample`` policy and remembers what was skipped.

    Counts and messages live in lock-free shared memory with one slot per process (the main
    process and each DataLoader worker id), so no two processes write the same slot and any
    multiprocessing start method works.

    Args:
        policy: ``'error'`` raises :class:`BadSampleError`; ``'skip'`` counts and records.
        max_examples: How many skip messages to keep for the report.
    """

    _SLOTS = 33  # main process + 32 worker ids (more wrap around)
    _SLOT_BYTES = 1024

    def __init__(self, policy: str = 'error', max_examples: int = 5):
        if policy not in POLICIES:
            raise ValueError(f'on_bad_sample must be one of {POLICIES}, got {policy!r}')
        self.policy = policy
        self.max_examples = max_examples
        self._counts = mp.RawArray('q', self._SLOTS)
        self._examples = mp.RawArray('c', self._SLOTS * self._SLOT_BYTES)

    def __deepcopy__(self, memo):
        # Copies of a dataset (subsets, wrappers) report into the same counters.
        return self

    def handle(self, where: str, problem: str) -> None:
        """Raise (policy 'error') or record (policy 'skip') one bad sample."""
        message = f'{where}: {problem}'
        if self.policy == 'error':
            raise BadSampleError(message + " (set on_bad_sample='skip' to skip such samples)")
        self.record(message)

    def record(self, message: str) -> None:
        """Count one skipped sample and keep its message if among the first ones of its process."""
        slot = self._slot()
        self._counts[slot] += 1
        if self._counts[slot] <= self.max_examples:
            start = slot * self._SLOT_BYTES
            region = bytes(self._examples[start:start + self._SLOT_BYTES]).split(b'\0', 1)[0]
            data = message.encode('utf-8')[: self._SLOT_BYTES - len(region) - 2] + b'\n'
            if len(data) > 1:
                offset = start + len(region)
                self._examples[offset:offset + len(data)] = data

    def _slot(self) -> int:
        info = torch.utils.data.get_worker_info()
        return 0 if info is None else 1 + info.id % (self._SLOTS - 1)

    @property
    def count(self) -> int:
        return int(sum(self._counts))

    @property
    def examples(self) -> List[str]:
        lines = []
        for slot in range(self._SLOTS):
            start = slot * self._SLOT_BYTES
            region = bytes(self._examples[start:start + self._SLOT_BYTES]).split(b'\0', 1)[0]
            lines += [x for x in region.decode('utf-8', errors='replace').split('\n') if x]
        return lines[: self.max_examples]

    def reset(self) -> None:
        for slot in range(self._SLOTS):
            self._counts[slot] = 0
        self._examples[:] = bytes(len(self._examples))

    def report(self, name: str, reset: bool = True, gather: bool = False) -> int:
        """Log the count and first examples (if any) and return the count.

        Args:
            name: What the report is about (dataset and moment), the log line's start.
            reset: Zero the counts and examples afterwards.
            gather: A collective: every rank calls it at the same point, and rank 0 alone logs the sum
                over ranks with each rank's examples (other ranks' loggers print errors only). The count
                returned is then the sum too.
        """
        per_rank = [(self.count, self.examples)]
        if gather and get_world_size() > 1:
            per_rank = all_gather_object(per_rank[0])
        count = sum(n for n, _ in per_rank)
        if count and (len(per_rank) == 1 or get_rank() == 0):
            if len(per_rank) == 1:
                lines = per_rank[0][1]
                head = f'{name}: skipped {count} bad sample(s); first ones:'
            else:
                lines = [f'rank {rank}: {line}' for rank, (_, examples) in enumerate(per_rank) for line in examples]
                ranks = ', '.join(f'rank {rank}: {n}' for rank, (n, _) in enumerate(per_rank))
                head = f'{name}: skipped {count} bad sample(s) ({ranks}); first ones:'
            print_log('\n  '.join([head, *lines]), logger='current', level=logging.WARNING)
        if reset:
            self.reset()
        return count
