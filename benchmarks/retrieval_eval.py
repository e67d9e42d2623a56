"""Time and peak memory of chunked retrieval evaluation on random normalised features.

    python benchmarks/retrieval_eval.py                       # 30k images x 150k texts, D=512, fp32, CPU
    python benchmarks/retrieval_eval.py --device cuda --dtype fp16

Measures text->image top-k (``chunked_topk``, what topk_predictions.py runs) and the exact ranks of
both directions (``retrieval_ranks``, what RetrievalRecall runs; one positive image per text).
Peak memory: process max RSS on CPU, ``torch.cuda.max_memory_allocated`` on GPU.
"""
import argparse
import json
import os.path as osp
import resource
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from cnclip_mm.evaluation.functional import chunked_topk, retrieval_ranks  # noqa: E402


def random_features(n: int, dim: int, dtype: torch.dtype, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, dim, dtype=dtype, device=device)
    for s in range(0, n, 16384):  # fill in blocks to keep fp32 temporaries small
        block = torch.randn(min(16384, n - s), dim, generator=g)
        out[s:s + len(block)] = torch.nn.functional.normalize(block, dim=1).to(device=device, dtype=dtype)
    return out


def peak_mb(device: str) -> float:
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def timed(fn, device: str):
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return result, time.perf_counter() - start, peak_mb(device)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-images', type=int, default=30000)
    parser.add_argument('--num-texts', type=int, default=150000)
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--dtype', choices=['fp32', 'fp16'], default='fp32')
    parser.add_argument('--topk', type=int, default=10)
    parser.add_argument('--chunk-size', type=int, help='query rows per block (default ~2**25 scores a block)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--skip-ranks', action='store_true', help='time top-k only')
    args = parser.parse_args(argv)
    dtype = torch.float16 if args.dtype == 'fp16' else torch.float32

    images = random_features(args.num_images, args.dim, dtype, args.device, seed=0)
    texts = random_features(args.num_texts, args.dim, dtype, args.device, seed=1)
    report = dict(images=args.num_images, texts=args.num_texts, dim=args.dim, dtype=args.dtype,
                  device=args.device, threads=torch.get_num_threads(),
                  features_mb=round((images.numel() + texts.numel()) * images.element_size() / 2**20, 1),
                  baseline_peak_mb=round(peak_mb(args.device), 1))
    _, secs, peak = timed(lambda: chunked_topk(texts, images, args.topk, args.chunk_size, args.device),
                          args.device)
    report.update(t2i_topk_s=round(secs, 2), t2i_topk_peak_mb=round(peak, 1))
    if not args.skip_ranks:
        positives = [[i % args.num_images] for i in range(args.num_texts)]
        (t2i, i2t), secs, peak = timed(
            lambda: retrieval_ranks(texts, images, positives, chunk_size=args.chunk_size, device=args.device),
            args.device)
        report.update(ranks_both_directions_s=round(secs, 2), ranks_peak_mb=round(peak, 1),
                      random_t2i_R1=round(100.0 * float((t2i == 0).float().mean()), 4))
    print(json.dumps(report, indent=2))
    return report


if __name__ == '__main__':
    main()
