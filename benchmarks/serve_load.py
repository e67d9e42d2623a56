"""Load test of tools/serve.py on loopback: batching on vs one request per model call.

    python benchmarks/serve_load.py                        # ViT-B/16 shape (random weights), text requests
    # docs/serving.md's table (about 4 minutes):
    python benchmarks/serve_load.py --model vit-b-16 --threads 1 --requests 256 --max-seconds 25 --soak 200
    python benchmarks/serve_load.py --model rn50 --threads 1       # docs/serving.md's memory over 10k requests
    python benchmarks/serve_load.py --kind image --requests 64
    python benchmarks/serve_load.py --device cuda --kind image   # the model on a GPU (docs/serving.md)
    python benchmarks/serve_load.py --tiny                 # tiny model, few requests, servers in-process

Two servers are started as subprocesses on 127.0.0.1 (port 0) with the same random weights: one batching
(``--max-batch 32 --max-wait-ms 5``), one with ``--max-batch 1``. Each gets 1, 8 and 32 concurrent clients
(threads sharing keep-alive connections; one text or one image per request; the two servers take turns
per level, which goes first alternating, so load from other processes hits both alike), each level bounded by
``--requests`` and ``--max-seconds``; throughput, p50 and p99 latency and the mean requests per model call
are printed, then the batching / one-at-a-time throughput ratio per level, after the model's own gain from batching measured without
HTTP (the ceiling of those ratios). Then the batching server takes ``--soak`` more requests from 32
clients (bounded by ``--soak-seconds``) and its resident memory is printed before and after.
``--in-process`` (implied by ``--tiny``) runs the servers as threads here instead: no start-up cost, but the
clients share their process, so only subprocess numbers describe the service.
"""
import argparse
import base64
import io
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

CLIENT_LEVELS = (1, 8, 32)
QUERIES = ['海边的日落', '一只猫在沙发上睡觉', '城市夜景的高楼', '雪山下的湖泊', '穿红色衣服的女孩在公园里跑步',
           '桌上的一碗牛肉面', '下雨天的街道', '草地上奔跑的小狗']


def write_checkpoint(model_name: str, folder: str) -> tuple:
    """Random weights of ``configs/_base_/models/<model_name>.py`` saved for tools/serve.py; (ckpt, config)."""
    import torch

    from cnclip_mm.apis import init_model
    config = osp.join(REPO, 'configs', '_base_', 'models', f'{model_name}.py')
    torch.manual_seed(0)
    model = init_model(config)
    path = osp.join(folder, f'{model_name}_random.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path, config, int(model.image_encoder.img_size)


def model_alone(checkpoint: str, config: str, kind: str, image_size: int, threads: Optional[int],
                batch: int = 32, device: str = 'cpu') -> dict:
    """The model's own batching gain, no HTTP: ms per item of ``Encoder.compute`` alone vs in a batch of
    ``batch`` (the ceiling of the service's ratio), with the servers' torch threads."""
    import torch

    from cnclip_mm import serving
    from cnclip_mm.apis import load_model
    encoder = serving.Encoder(load_model(checkpoint, config, device=device))
    items = ([QUERIES[i % len(QUERIES)] + f' {i}' for i in range(batch)] if kind == 'text' else
             [encoder.preprocess(serving.images.decode_image(make_body(kind, image_size, i)['images'][0],
                                                             serving.Limits(), 'images')) for i in range(batch)])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        encoder.compute(kind, items[:2])  # warm-up
        start = time.perf_counter()
        for item in items[:8]:
            encoder.compute(kind, [item])
        alone = (time.perf_counter() - start) / 8
        start = time.perf_counter()
        encoder.compute(kind, items)
        batched = (time.perf_counter() - start) / batch
    finally:
        torch.set_num_threads(previous)
    return dict(batch=batch, alone_ms=round(alone * 1000, 1), batched_ms=round(batched * 1000, 1),
                ratio=round(alone / batched, 2))


class Server:
    """tools/serve.py in a subprocess on 127.0.0.1, port 0; ``url`` once it printed its address."""

    def __init__(self, checkpoint: str, config: str, max_batch: int, max_wait_ms: float, log_path: str,
                 threads: Optional[int] = None, device: str = 'cpu'):
        cmd = [sys.executable, osp.join(REPO, 'tools', 'serve.py'), checkpoint, '--config', config,
               '--host', '127.0.0.1', '--port', '0', '--max-batch', str(max_batch),
               '--max-wait-ms', str(max_wait_ms), '--log-level', 'warning', '--device', device]
        cmd += ['--threads', str(threads)] if threads else []
        self.log = open(log_path, 'w')
        env = dict(os.environ, CNCLIP_API_KEY='')
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.url: Optional[str] = None

    def wait_ready(self) -> str:
        for line in self.proc.stdout:
            if line.startswith('serving '):
                self.url = line.rsplit(' ', 1)[-1].strip()
                # keep reading its output: a full pipe would block the server
                threading.Thread(target=self.log.writelines, args=(self.proc.stdout, ), daemon=True).start()
                return self.url
        self.stop()
        raise RuntimeError(f'the server did not start; see {self.log.name}')

    def rss_mb(self) -> float:
        import psutil
        return psutil.Process(self.proc.pid).memory_info().rss / 2 ** 20

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


class InProcessServer:
    """The same app in a thread of this process (``--in-process``: no start-up cost, for smoke runs; the
    clients then share this process, so its numbers are not the service's)."""

    def __init__(self, checkpoint: str, config: str, max_batch: int, max_wait_ms: float, log_path: str,
                 threads: Optional[int] = None, device: str = 'cpu'):
        from cnclip_mm import serving
        from cnclip_mm.apis import load_model
        model = load_model(checkpoint, config, device=device)
        service = serving.EmbeddingService(serving.Encoder(model), name=osp.basename(checkpoint),
                                           max_batch=max_batch, max_wait_s=max_wait_ms / 1000)
        self.server = serving.ServerThread(serving.create_app(service))
        self.url: Optional[str] = None

    def wait_ready(self) -> str:
        self.url = self.server.start().url
        return self.url

    def rss_mb(self) -> float:
        import psutil
        return psutil.Process().memory_info().rss / 2 ** 20

    def stop(self) -> None:
        self.server.stop()


def make_body(kind: str, image_size: int, i: int) -> dict:
    if kind == 'text':
        return {'input': QUERIES[i % len(QUERIES)] + f' {i}'}
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(i)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)).save(buf, 'JPEG')
    return {'images': [base64.b64encode(buf.getvalue()).decode()]}


def load(url: str, bodies: List[dict], clients: int, requests: int, max_seconds: float) -> Dict[str, float]:
    """``clients`` threads share one keep-alive connection pool and send requests until ``requests`` are
    done or ``max_seconds`` passed; returns throughput and p50 / p99 latency."""
    import httpx
    latencies: List[float] = []
    failures: List[int] = []
    counter = iter(range(requests))
    lock = threading.Lock()
    pool = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with httpx.Client(base_url=url, timeout=max_seconds + 60, limits=pool) as http:
        start_line = threading.Barrier(clients + 1)

        def client():
            start_line.wait()
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    status = http.post('/v1/embeddings', json=bodies[i % len(bodies)]).status_code
                except httpx.HTTPError as err:
                    status = type(err).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        failures.append(status)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + max_seconds
        start = time.perf_counter()
        start_line.wait()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    if failures:
        raise RuntimeError(f'{len(failures)} requests failed: {sorted(set(map(str, failures)))}')
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return dict(clients=clients, requests=len(latencies), seconds=round(wall, 2),
                throughput=round(len(latencies) / wall, 1), p50_ms=round(pick(0.5), 1), p99_ms=round(pick(0.99), 1))


def run(model: str = 'vit-b-16', kind: str = 'text', requests: int = 512, max_seconds: float = 60,
        soak: int = 10000, soak_seconds: float = 600, max_wait_ms: float = 5.0,
        levels=CLIENT_LEVELS, in_process: bool = False, threads: Optional[int] = None,
        out: Optional[str] = None, device: str = 'cpu') -> dict:
    """Both servers, every client level, the soak; returns (and prints) the numbers."""
    with tempfile.TemporaryDirectory(prefix='serve_load_') as tmp:
        checkpoint, config, image_size = write_checkpoint(model, tmp)
        alone = model_alone(checkpoint, config, kind, image_size, threads, device=device)
        kind_of_server = InProcessServer if in_process else Server
        servers = {'batching': kind_of_server(checkpoint, config, 32, max_wait_ms, osp.join(tmp, 'batching.log'),
                                              threads, device),
                   'one-at-a-time': kind_of_server(checkpoint, config, 1, 0, osp.join(tmp, 'single.log'), threads,
                                                   device)}
        try:
            started = time.perf_counter()
            for server in servers.values():
                server.wait_ready()
            print(f'servers ready in {time.perf_counter() - started:.1f} s', flush=True)
            bodies = [make_body(kind, image_size, i) for i in range(64)]
            result = dict(model=model, kind=kind, cpu=cpu_name(), device=device_name(device), servers='in-process' if in_process else 'subprocesses',
                          threads=threads, model_alone=alone, levels={})
            for server in servers.values():
                load(server.url, bodies, 4, 8, max_seconds)  # warm-up
            for level, clients in enumerate(levels):  # the servers take turns per level, in alternating
                order = list(servers.items())                # order: both see the same load from others
                for name, server in order[::-1] if level % 2 == 0 else order:
                    calls_before = httpx_get_json(server.url + '/health')['batching']['calls']
                    row = load(server.url, bodies, clients, requests, max_seconds)
                    calls = httpx_get_json(server.url + '/health')['batching']['calls'] - calls_before
                    row['mean_batch'] = round(row['requests'] / max(1, calls), 1)  # one item per request
                    result['levels'].setdefault(name, []).append(row)
                    print(f'{name}: {row}', file=sys.stderr, flush=True)
            result['ratio'] = {c: round(b['throughput'] / s['throughput'], 2) for c, b, s in
                               zip(levels, result['levels']['batching'], result['levels']['one-at-a-time'])}
            batching = servers['batching']
            stats = httpx_get_json(batching.url + '/health')['batching']
            result['batches'] = dict(calls=stats['calls'], items=stats['items'], largest=stats['largest'],
                                     mean=round(stats['items'] / max(1, stats['calls']), 1))
            before = batching.rss_mb()
            soaked = load(batching.url, bodies, 32, soak, soak_seconds)
            result['memory'] = dict(requests=soaked['requests'], rss_before_mb=round(before, 1),
                                    rss_after_mb=round(batching.rss_mb(), 1), soak_throughput=soaked['throughput'])
        finally:
            for server in servers.values():
                server.stop()
    report(result)
    if out:
        with open(out, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return result


def httpx_get_json(url: str) -> dict:
    import httpx
    return httpx.get(url, timeout=60).json()


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        return f'{names[0]} ({len(names)} logical CPUs, shared)' if names else 'unknown CPU'
    except OSError:
        return 'unknown CPU'


def device_name(device: str) -> str:
    """The model's device in words: 'cpu', or the GPU's name."""
    import torch
    return torch.cuda.get_device_name(device) if device.startswith('cuda') else 'cpu'


def report(result: dict) -> None:
    threads = f"{result['threads']} torch threads each" if result['threads'] else 'default torch threads'
    print(f"model {result['model']} (random weights), {result['kind']} requests, servers as {result['servers']} "
          f"({threads}), model on {result['device']}, {result['cpu']}")
    print(f"{'server':<14} {'clients':>7} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6}")
    for name, rows in result['levels'].items():
        for row in rows:
            print(f"{name:<14} {row['clients']:>7} {row['requests']:>8} {row['throughput']:>8} "
                  f"{row['p50_ms']:>8} {row['p99_ms']:>8} {row['mean_batch']:>6}")
    alone = result['model_alone']
    print(f"model alone (no HTTP): {alone['alone_ms']} ms per item one at a time, {alone['batched_ms']} ms per "
          f"item in a batch of {alone['batch']}: {alone['ratio']}x, the ceiling of the ratios below")
    for clients, ratio in result['ratio'].items():
        print(f'batching / one-at-a-time throughput at {clients} clients: {ratio}x')
    batches = result['batches']
    print(f"batching server until then: {batches['items']} items in {batches['calls']} model calls "
          f"(mean {batches['mean']}, largest {batches['largest']})")
    mem = result['memory']
    print(f"resident memory of the batching server: {mem['rss_before_mb']} MB before, {mem['rss_after_mb']} MB "
          f"after {mem['requests']} more requests ({mem['soak_throughput']} req/s)")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description='Load test of the embeddings service (loopback only)')
    parser.add_argument('--model', default='vit-b-16', help='a config under configs/_base_/models')
    parser.add_argument('--kind', choices=['text', 'image'], default='text')
    parser.add_argument('--requests', type=int, default=512, help='requests per server and client level')
    parser.add_argument('--max-seconds', type=float, default=60, help='time cap per server and client level')
    parser.add_argument('--soak', type=int, default=10000, help='requests between the two memory readings')
    parser.add_argument('--soak-seconds', type=float, default=600, help='time cap of the soak')
    parser.add_argument('--max-wait-ms', type=float, default=5.0, help='the batching server\'s max wait')
    parser.add_argument('--threads', type=int, help='torch threads of each server subprocess (tools/serve.py '
                        '--threads; default: one per core)')
    parser.add_argument('--in-process', action='store_true',
                        help='servers as threads of this process (no start-up; clients share the process)')
    parser.add_argument('--tiny', action='store_true',
                        help='the tiny model, a few requests, servers in-process: a smoke run of seconds')
    parser.add_argument('--device', default='cpu', help="the servers' model device (tools/serve.py --device)")
    parser.add_argument('--out', help='also write the numbers as JSON')
    args = parser.parse_args(argv)
    if args.tiny:
        args.model, args.requests, args.soak, args.max_seconds, args.in_process = 'tiny', 16, 32, 30, True
    return run(args.model, args.kind, args.requests, args.max_seconds, args.soak, args.soak_seconds,
               args.max_wait_ms, in_process=args.in_process, threads=args.threads, out=args.out,
               device=args.device)


if __name__ == '__main__':
    main()
