"""Requests that arrive together share model calls, and each gets its own rows back."""
import asyncio
import threading

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


def test_max_batch_one_runs_every_request_alone():
    calls, stats = _run_jobs(1, [('text', [i]) for i in range(5)], max_wait_s=0.0)
    assert calls == [('text', 1)] * 5 and stats.calls == 5


def test_concurrent_http_requests_are_batched(server):
    """8 clients at once (max_wait 0.1 s): far fewer model calls than requests, same embeddings as alone."""
    texts = [f'第{i}张照片里的风景' for i in range(8)]
    headers = {'Authorization': f'Bearer {API_KEY}'}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        alone = [d['embedding'] for d in client.post('/v1/embeddings', json={'input': texts}).json()['data']]
    before = server.service.batcher.stats.calls
    barrier, results = threading.Barrier(len(texts)), [None] * len(texts)

    def request(i):
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            barrier.wait()
            results[i] = client.post('/v1/embeddings', json={'input': texts[i]}).json()['data'][0]['embedding']

    threads = [threading.Thread(target=request, args=(i, )) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = server.service.batcher.stats.calls - before
    assert 1 <= calls <= 3, f'{len(texts)} concurrent requests took {calls} model calls'
    assert torch.allclose(torch.tensor(results), torch.tensor(alone), atol=1e-5)
