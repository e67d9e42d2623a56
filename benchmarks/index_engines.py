"""Vector-search engines side by side: recall@10 against exact search, queries/s and build time.

    python benchmarks/index_engines.py                                   # 100k x 512-d, 1000 queries
    python benchmarks/index_engines.py --demo-checkpoint work_dirs/demo/stage2/epoch_12.pth
    python benchmarks/index_engines.py --engines exact faiss-ivf usearch-hnsw milvus-lite
    python benchmarks/index_engines.py --tiny                            # seconds: what the test runs

Data sets (L2-normalised, inner product):
  clustered   CLIP-like unit vectors around 2000 directions (noise norm 1.0), queries drawn the same way.
  uniform     uniform random unit vectors and queries: no structure, the worst case of every approximate index.
  demo        with --demo-checkpoint: the demo model's features of the demo images (data/demo, made by
              tools/run_demo.py) plus uniform random unit vectors up to --n, queried by the demo's texts.
Engines: ``exact`` (faiss flat, the ground truth), ``faiss-ivf`` (cnclip_mm.index.VectorIndex at its
defaults, nprobe swept too), ``usearch-hnsw`` (usearch defaults), ``milvus-lite`` (pymilvus + milvus-lite,
not in the extras: ``pip install pymilvus milvus-lite``). Queries/s: one batch of all queries, wall clock,
faiss/usearch on every core. The machine may be shared: compare ratios within one run.
"""
import argparse
import os.path as osp
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

ENGINES = ('exact', 'faiss-ivf', 'usearch-hnsw', 'milvus-lite')


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    centers = unit(np.random.default_rng(dim).standard_normal((clusters, dim)))
    rng = np.random.default_rng(seed)
    return unit(centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)) / np.sqrt(dim))


def demo_features(checkpoint: str, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Demo image features + random unit vectors up to ``n`` (gallery), demo text features (queries)."""
    import json

    import torch
    from mmengine.registry import init_default_scope

    from cnclip_mm.apis.inference import encode_images, encode_texts
    from cnclip_mm.apis.inferencers.gallery import iter_tsv
    from cnclip_mm.models.builder import init_model
    init_default_scope('cnclip_mm')
    torch.manual_seed(0)
    root = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'demo')
    model = init_model(None, checkpoint)
    images, texts = [], []
    for split in ('train', 'valid', 'test'):
        images += [decode() for _, decode in iter_tsv(osp.join(root, f'{split}_imgs.tsv'))]
        with open(osp.join(root, f'{split}_texts.jsonl'), encoding='utf-8') as f:
            texts += [json.loads(line)['text'] for line in f if line.strip()]
    feats = encode_images(model, images, batch_size=128).numpy()
    queries = encode_texts(model, texts).numpy()
    filler = unit(np.random.default_rng(5).standard_normal((max(0, n - len(feats)), feats.shape[1])))
    return np.concatenate([feats, filler]), queries


def timed(fn: Callable):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))


def run_exact(gallery, queries, k, exact_max):
    import faiss
    index = faiss.IndexFlatIP(gallery.shape[1])
    _, build = timed(lambda: index.add(gallery))
    (_, found), search = timed(lambda: index.search(queries, k))
    return [('exact (faiss flat)', found, build, search)]


def run_faiss_ivf(gallery, queries, k, exact_max):
    from cnclip_mm.index import VectorIndex
    ids = [str(i) for i in range(len(gallery))]
    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex.create(osp.join(tmp, 'ix'), gallery.shape[1], exact_max=exact_max)
        _, build = timed(lambda: index.add(ids, gallery))
        nprobe, rows = index.meta['nprobe'], []
        for probe in sorted({max(1, nprobe // 4), max(1, nprobe // 2), nprobe, nprobe * 2}):
            index.set_nprobe(probe)
            (found, _), search = timed(lambda: index.search(queries, k))
            label = f'faiss {index.kind} nlist={index.meta["nlist"]} nprobe={probe}' + \
                (' (default)' if probe == nprobe else '')
            rows.append((label, found.astype(np.int64), build, search))
        return rows


def run_usearch(gallery, queries, k, exact_max):
    from usearch.index import Index
    index = Index(ndim=gallery.shape[1], metric='ip', dtype='f32')
    _, build = timed(lambda: index.add(np.arange(len(gallery)), gallery))
    matches, search = timed(lambda: index.search(queries, k))
    return [('usearch hnsw (defaults)', np.asarray(matches.keys).astype(np.int64), build, search)]


def run_milvus_lite(gallery, queries, k, exact_max):
    from pymilvus import MilvusClient
    with tempfile.TemporaryDirectory() as tmp:
        client = MilvusClient(osp.join(tmp, 'bench.db'))
        client.create_collection('gallery', dimension=gallery.shape[1], metric_type='IP')

        def insert():
            for s in range(0, len(gallery), 5000):
                client.insert('gallery', [{'id': i, 'vector': gallery[i].tolist()}
                                          for i in range(s, min(s + 5000, len(gallery)))])
        _, build = timed(insert)
        hits, search = timed(lambda: client.search('gallery', data=queries.tolist(), limit=k, output_fields=[]))
        found = np.array([[hit['id'] for hit in row] for row in hits], np.int64)
        client.close()
    return [('milvus-lite (AUTOINDEX)', found, build, search)]


RUNNERS = {'exact': run_exact, 'faiss-ivf': run_faiss_ivf, 'usearch-hnsw': run_usearch,
           'milvus-lite': run_milvus_lite}


def bench(name: str, gallery: np.ndarray, queries: np.ndarray, engines: List[str], exact_max: int,
          k: int = 10) -> List[Dict]:
    truth = RUNNERS['exact'](gallery, queries, k, exact_max)[0][1]
    exact_qps = None
    results = []
    for engine in engines:
        for label, found, build, search in RUNNERS[engine](gallery, queries, k, exact_max):
            qps = len(queries) / search
            exact_qps = exact_qps or (qps if engine == 'exact' else None)
            row = dict(data=name, engine=label, recall_at_10=recall_at_10(found, truth), qps=qps,
                       build_s=build, speedup_vs_exact=qps / exact_qps if exact_qps else None)
            results.append(row)
            print(f'{name:10s} {label:45s} recall@10 {row["recall_at_10"]:.4f}  {qps:9.0f} q/s'
                  + (f'  x{row["speedup_vs_exact"]:.1f} exact' if exact_qps else '') + f'  build {build:.1f} s',
                  flush=True)
    return results


def main(argv=None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=100_000, help='gallery vectors')
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--queries', type=int, default=1000)
    parser.add_argument('--data', nargs='*', default=['clustered', 'uniform'], choices=['clustered', 'uniform'],
                        help='synthetic sets (none: only --demo-checkpoint)')
    parser.add_argument('--demo-checkpoint', help='a demo checkpoint (tools/run_demo.py): adds the demo data set')
    parser.add_argument('--engines', nargs='+', default=['exact', 'faiss-ivf', 'usearch-hnsw'], choices=ENGINES)
    parser.add_argument('--tiny', action='store_true', help='3000 x 32-d, 100 queries: seconds')
    args = parser.parse_args(argv)
    from cnclip_mm.index import EXACT_MAX
    exact_max = EXACT_MAX
    if args.tiny:
        args.n, args.dim, args.queries = 3000, 32, 100
        exact_max = 1000  # so the tiny run takes the IVF path as the 100k one does
    if 'exact' not in args.engines:
        args.engines.insert(0, 'exact')
    results = []
    for name in args.data:
        if name == 'clustered':
            gallery, queries = clustered(args.n, args.dim, 2000, 1), clustered(args.queries, args.dim, 2000, 2)
        else:
            rng = np.random.default_rng(3)
            gallery, queries = unit(rng.standard_normal((args.n, args.dim))), unit(
                rng.standard_normal((args.queries, args.dim)))
        results += bench(name, gallery, queries, args.engines, exact_max)
    if args.demo_checkpoint:
        gallery, queries = demo_features(args.demo_checkpoint, args.n)
        results += bench('demo', gallery, queries, args.engines, exact_max)
    return results


if __name__ == '__main__':
    main()
