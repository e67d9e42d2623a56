"""Dynamic batching: requests that arrive together share one model call.

An asyncio queue collects the requests' items; a collector task takes the first waiting request, adds
the ones that arrive within ``max_wait_s`` (or are already waiting, e.g. queued during the previous
call) up to ``max_batch`` items of the same kind, runs them as one call on the single model worker
thread and hands each request its own rows back. ``max_batch=1`` runs every request alone.
"""
import asyncio
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch


@dataclass
class _Job:
    kind: str
    items: list
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the batcher did: model calls, items through them, and the largest call."""

    calls: int = 0
    items: int = 0
    largest: int = 0
    by_kind: Dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict:
        return dict(calls=self.calls, items=self.items, largest=self.largest, calls_by_kind=dict(self.by_kind))


class Batcher:
    """Run ``compute(kind, items) -> Tensor[len(items), ...]`` on one worker thread, batching requests.

    Args:
        compute: the model call; gets at most ``max_batch`` items of one kind, returns one row per item.
        max_batch: most items per model call (requests bigger than this are run alone, in chunks).
        max_wait_s: how long the first request of a batch waits for company.
    """

    def __init__(self, compute: Callable[[str, list], torch.Tensor], max_batch: int = 32,
                 max_wait_s: float = 0.005) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f'max_batch must be >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}')
        self.compute = compute
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: Optional[asyncio.Queue] = None
        self._carry: Optional[_Job] = None
        self._task: Optional[asyncio.Task] = None
        self._executor: Optional[ThreadPoolExecutor] = None

    async def start(self) -> None:
        """Start the collector on the running loop and the model worker thread."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix='cnclip-model')
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._task = self._executor = None

    async def submit(self, kind: str, items: List[Any]) -> torch.Tensor:
        """The rows of ``compute(kind, items)``, computed in a batch with whatever else is waiting."""
        if self._queue is None:
            raise RuntimeError('Batcher.start() was not called (the app runs it at startup)')
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(kind, list(items), future))
        return await future

    async def run_exclusive(self, fn: Callable, *args) -> Any:
        """``fn(*args)`` on the model worker thread, between batches (for work that needs the model alone)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry or await self._queue.get()
            self._carry = None
            jobs, count = [first], len(first.items)
            deadline = time.monotonic() + self.max_wait_s
            while count < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self._queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                if count + len(job.items) > self.max_batch:
                    self._carry = job
                    break
                jobs.append(job)
                count += len(job.items)
            for kind in dict.fromkeys(job.kind for job in jobs):
                await self._run(loop, [job for job in jobs if job.kind == kind and not job.future.done()])

    async def _run(self, loop, jobs: List[_Job]) -> None:
        if not jobs:
            return
        items = [item for job in jobs for item in job.items]
        try:
            rows = await loop.run_in_executor(self._executor, self._compute_chunks, jobs[0].kind, items)
        except Exception as err:  # the model failed: every request of this call hears why
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(rows[start:start + len(job.items)])
            start += len(job.items)

    def _compute_chunks(self, kind: str, items: list) -> torch.Tensor:
        outs = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start:start + self.max_batch]
            outs.append(self.compute(kind, chunk))
            self.stats.calls += 1
            self.stats.items += len(chunk)
            self.stats.largest = max(self.stats.largest, len(chunk))
            self.stats.by_kind[kind] += 1
        return torch.cat(outs)
