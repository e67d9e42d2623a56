"""Requests that arrive together share model calls, and each gets its own rows back."""
import asyncio
import threading
import time

import httpx
import torch
from serving_fixtures import API_KEY

from cnclip_mm.serving import Batcher


def _run_jobs(max_batch: int, jobs: list, max_wait_s: float = 0.05):
    calls = []

    def compute(kind, items):
        calls.append((kind, len(items)))
        return torch.tensor(items, dtype=torch.float32)[:, None] * (1 if kind == 'text' else -1)

    async def main():
        batcher = Batcher(compute, max_batch=max_batch, max_wait_s=max_wait_s)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(kind, items) for kind, items in jobs)), batcher.stats
        finally:
            await batcher.stop()

    results, stats = asyncio.run(main())
    for (kind, items), rows in zip(jobs, results):  # every request gets exactly its own rows
        assert rows[:, 0].tolist() == [float(v) * (1 if kind == 'text' else -1) for v in items]
    return calls, stats


def test_concurrent_jobs_share_calls_up_to_max_batch():
    jobs = [('text', [i]) for i in range(10)] + [('text', [100, 101, 102])]
    calls, stats = _run_jobs(32, jobs)
    assert calls == [('text', 13)] and stats.calls == 1 and stats.largest == 13
    calls, _ = _run_jobs(4, jobs)
    assert [n for _, n in calls] == [4, 4, 2, 3]  # the 3-item job does not fit beside two: next call


def test_kinds_are_never_mixed_and_big_jobs_are_chunked():
    jobs = [('text', [1]), ('image', [2, 3]), ('text', [4]), ('image', list(range(10, 16)))]
    calls, _ = _run_jobs(4, jobs)
    assert calls == [('text', 2), ('image', 2), ('image', 4), ('image', 2)]


def test_lone_request_runs_at_once_and_requests_queued_meanwhile_share_the_next_call():
    """An idle batcher does not wait max_wait for company; what queues during a call shares the next one."""
    calls, started = [], threading.Event()
    release = threading.Event()

    def compute(kind, items):
        calls.append(len(items))
        started.set()
        release.wait(10)
        return torch.tensor(items, dtype=torch.float32)[:, None]

    async def main():
        batcher = Batcher(compute, max_batch=8, max_wait_s=30.0)  # a wait this long would time the test out
        await batcher.start()
        try:
            lone = asyncio.ensure_future(batcher.submit('text', [0]))
            await asyncio.to_thread(started.wait, 10)  # the lone request reached the model without waiting
            later = [asyncio.ensure_future(batcher.submit('text', [i])) for i in range(1, 9)]
            while batcher.waiting < len(later):
                await asyncio.sleep(0.001)
            release.set()
            return await asyncio.wait_for(asyncio.gather(lone, *later), 10)
        finally:
            release.set()
            await batcher.stop()

    rows = asyncio.run(main())
    assert calls == [1, 8]  # the 8 queued during the first call filled max_batch: no wait for more
    assert [r[0, 0].item() for r in rows] == list(range(9))


def test_tuple_results_are_split_per_request():
    async def main():
        batcher = Batcher(lambda kind, items: (torch.tensor(items), torch.tensor(items) * 10), max_batch=8)
        await batcher.start()
        try:
            return await asyncio.gather(batcher.submit('text', [1, 2]), batcher.submit('text', [3]))
        finally:
            await batcher.stop()

    (a, a10), (b, b10) = asyncio.run(main())
    assert a.tolist() == [1, 2] and a10.tolist() == [10, 20] and b.tolist() == [3] and b10.tolist() == [30]


def test_max_batch_one_runs_every_request_alone():
    calls, stats = _run_jobs(1, [('text', [i]) for i in range(5)], max_wait_s=0.0)
    assert calls == [('text', 1)] * 5 and stats.calls == 5


def test_http_requests_queued_while_the_model_is_busy_share_one_call(server):
    """A first request holds the model; 8 clients that send meanwhile share one call, same embeddings as alone."""
    texts = [f'第{i}张照片里的风景' for i in range(8)]
    headers = {'Authorization': f'Bearer {API_KEY}'}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        alone = [d['embedding'] for d in client.post('/v1/embeddings', json={'input': texts}).json()['data']]
    batcher, busy, release = server.service.batcher, threading.Event(), threading.Event()
    compute = batcher.compute

    def held_compute(kind, items):
        if not busy.is_set():
            busy.set()
            release.wait(30)
        return compute(kind, items)

    results = [None] * (len(texts) + 1)

    def request(i, text):
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            results[i] = client.post('/v1/embeddings', json={'input': text}).json()['data'][0]['embedding']

    batcher.compute, before = held_compute, batcher.stats.calls
    try:
        first = threading.Thread(target=request, args=(len(texts), '占着模型的请求'))
        first.start()
        assert busy.wait(30)
        threads = [threading.Thread(target=request, args=(i, text)) for i, text in enumerate(texts)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while batcher.waiting < len(texts) and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        release.set()
        batcher.compute = compute
    for t in [first] + threads:
        t.join()
    calls = batcher.stats.calls - before
    assert calls == 2, f'1 request and {len(texts)} queued behind it took {calls} model calls'
    assert torch.allclose(torch.tensor(results[:-1]), torch.tensor(alone), atol=1e-5)
