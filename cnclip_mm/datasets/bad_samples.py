"""Bad-sample policy shared by every dataset: raise a clear error, or skip and count.

Skips may happen in DataLoader worker processes, so the counter and the first examples live in
shared memory created in the main process; the main process (``BadSampleReportHook`` or
``check_dataset.py``) reads and logs them.
"""
import logging
import multiprocessing as mp
from typing import List

from mmengine.logging import print_log

POLICIES = ('error', 'skip')


class BadSampleError(ValueError):
    """A sample (file, line or key) is unusable; the message names where and why."""


class BadSampleLog:
    """Applies the ``on_bad_sample`` policy and remembers what was skipped.

    Args:
        policy: ``'error'`` raises :class:`BadSampleError`; ``'skip'`` counts and records.
        max_examples: How many skip messages to keep for the report.
    """

    _BUF = 8192

    def __init__(self, policy: str = 'error', max_examples: int = 5):
        if policy not in POLICIES:
            raise ValueError(f'on_bad_sample must be one of {POLICIES}, got {policy!r}')
        self.policy = policy
        self.max_examples = max_examples
        self._count = mp.Value('q', 0)
        self._examples = mp.Array('c', self._BUF, lock=False)

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
        """Count one skipped sample and keep its message if among the first ones."""
        with self._count.get_lock():
            self._count.value += 1
            if self._count.value <= self.max_examples:
                self._append(message)

    def _append(self, message: str) -> None:
        used = self._examples.value
        room = self._BUF - len(used) - 2
        data = message.encode('utf-8')[: max(room, 0)]
        if data:
            self._examples.value = used + data + b'\n'

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def examples(self) -> List[str]:
        text = self._examples.value.decode('utf-8', errors='replace')
        return [line for line in text.split('\n') if line]

    def reset(self) -> None:
        with self._count.get_lock():
            self._count.value = 0
            self._examples.value = b''

    def report(self, name: str, reset: bool = True) -> int:
        """Log the count and first examples (if any) and return the count."""
        count = self.count
        if count:
            lines = '\n  '.join(self.examples)
            print_log(f'{name}: skipped {count} bad sample(s); first ones:\n  {lines}',
                      logger='current', level=logging.WARNING)
        if reset:
            self.reset()
        return count
