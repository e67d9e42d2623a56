"""Continuous batching: requests that arrive while the model is busy share its next call.

An asyncio queue collects the requests' items. Whenever the single model worker thread is free, the
collector takes everything queued, up to ``max_batch`` items of one kind, and runs it as one call; each
request gets its own rows back. A request that finds the model idle and nobody waiting runs at once (no
wait for company that may never come); only when requests were already queued, i.e. under load, does a
batch that is not full wait up to ``max_wait_s`` for more. ``max_batch=1`` runs every request alone.
"""
import asyncio
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

Rows = Union[torch.Tensor, Tuple[torch.Tensor, ...]]


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
    """Run ``compute(kind, items)`` on one worker thread, batching the requests queued meanwhile.

    Args:
        compute: the model call; gets at most ``max_batch`` items of one kind, returns one row per item
            (a tensor, or a tuple of tensors with one row per item each).
        max_batch: most items per model call (requests bigger than this are run alone, in chunks).
        max_wait_s: under load (requests already queued when the model became free), how long a batch
            that is not full waits for more; a request that finds the batcher idle never waits.
    """

    def __init__(self, compute: Callable[[str, list], Rows], max_batch: int = 32,
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

    @property
    def waiting(self) -> int:
        """Requests queued for the next model call."""
        return (self._queue.qsize() if self._queue is not None else 0) + (self._carry is not None)

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

    async def submit(self, kind: str, items: Sequence[Any]) -> Rows:
        """The rows of ``compute(kind, items)``, computed in one call with whatever else is queued."""
        if self._queue is None:
            raise RuntimeError('Batcher.start() was not called (the app runs it at startup)')
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(kind, list(items), future))
        return await future

    async def run_exclusive(self, fn: Callable, *args) -> Any:
        """``fn(*args)`` on the model worker thread, between batches (for work that needs the model alone)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            loaded = self._carry is not None or not self._queue.empty()
            first = self._carry or await self._queue.get()
            self._carry = None
            jobs, count = [first], len(first.items)
            deadline = loop.time() + (self.max_wait_s if loaded else 0.0)
            while count < self.max_batch:
                job = await self._next_job(deadline - loop.time())
                if job is None:
                    break
                if count + len(job.items) > self.max_batch:
                    self._carry = job
                    break
                jobs.append(job)
                count += len(job.items)
            for kind in dict.fromkeys(job.kind for job in jobs):
                await self._run(loop, [job for job in jobs if job.kind == kind and not job.future.done()])

    async def _next_job(self, wait_s: float) -> Optional[_Job]:
        """A queued job, or one arriving within ``wait_s``; None when none comes."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        if wait_s <= 0:
            return None
        getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait([getter], timeout=wait_s)
        if done:
            return getter.result()
        getter.cancel()  # a get that has not completed holds no item
        return None

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
                part = slice(start, start + len(job.items))
                job.future.set_result(tuple(r[part] for r in rows) if isinstance(rows, tuple) else rows[part])
            start += len(job.items)

    def _compute_chunks(self, kind: str, items: list) -> Rows:
        outs = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start:start + self.max_batch]
            outs.append(self.compute(kind, chunk))
            self.stats.calls += 1
            self.stats.items += len(chunk)
            self.stats.largest = max(self.stats.largest, len(chunk))
            self.stats.by_kind[kind] += 1
        if isinstance(outs[0], tuple):
            return tuple(torch.cat(parts) for parts in zip(*outs))
        return torch.cat(outs)
