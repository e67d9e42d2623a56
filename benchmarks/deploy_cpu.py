"""PyTorch vs ONNX Runtime on CPU: image and text towers of ViT-B/16 shape (random weights), fp32.

    python benchmarks/deploy_cpu.py                     # batch 1 and 32, all cores
    python benchmarks/deploy_cpu.py --threads 2 --reps 10 --out work_dirs/deploy_cpu.json

Both backends get the same thread count. Runs alternate (PyTorch, ORT, PyTorch, ...) so that load from
other processes hits both alike; prints min and median per batch, items/s, and the ORT/PyTorch ratio of
throughput (> 1: ONNX Runtime faster). Text inputs have the full context length (52).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from cnclip_mm.deployment import OrtBackend, export_towers  # noqa: E402
from cnclip_mm.deployment.onnx_export import _example_ids  # noqa: E402
from cnclip_mm.registry import MODELS  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def timings(fns, reps: int):
    """Alternate the callables ``reps`` times after one warm-up each; seconds per call, per callable."""
    for fn in fns:
        fn()
    out = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            out[i].append(time.perf_counter() - start)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--reps', type=int, default=10, help='timed runs per backend and case (batch 32: /4)')
    parser.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument('--onnx-dir', help='reuse an export (default: a temporary folder)')
    parser.add_argument('--out', help='write the results as JSON')
    args = parser.parse_args(argv)

    init_default_scope('cnclip_mm')
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(osp.join(REPO, 'configs/_base_/models/vit-b-16.py')).model).eval()
    onnx_dir = args.onnx_dir or tempfile.mkdtemp(prefix='cnclip_bench_onnx_')
    if not osp.isfile(osp.join(onnx_dir, 'meta.json')):
        start = time.perf_counter()
        export_towers(model, onnx_dir, validate=False)
        print(f'export: {time.perf_counter() - start:.1f} s -> {onnx_dir}')
    ort = OrtBackend(onnx_dir, num_threads=args.threads)
    print(f'threads: {args.threads} (torch {torch.__version__}, onnxruntime via {ort.image_session.get_providers()})')
    rows = []
    header = f'{"tower":5} {"batch":>5} | {"torch min/med ms":>18} | {"ORT min/med ms":>18} | ' \
             f'{"torch /s":>9} {"ORT /s":>9} | {"ratio":>5}'
    print(header)
    for batch in args.batches:
        reps = max(3, args.reps // 4) if batch > 8 else args.reps
        images = torch.randn(batch, 3, 224, 224)
        ids = _example_ids(batch, 52, 21128)
        with torch.no_grad():
            diff = max(float((ort.image_feats(images) - model.extract_image_feat(images)).abs().max()),
                       float((ort.text_feats(ids) - model.extract_text_feat(ids)).abs().max()))
            for tower, run_torch, run_ort in (
                    ('image', lambda x=images: model.extract_image_feat(x), lambda x=images: ort.image_feats(x)),
                    ('text', lambda x=ids: model.extract_text_feat(x), lambda x=ids: ort.text_feats(x))):
                t_torch, t_ort = timings([run_torch, run_ort], reps)
                med_torch, med_ort = statistics.median(t_torch), statistics.median(t_ort)
                row = dict(tower=tower, batch=batch, reps=reps, threads=args.threads,
                           torch_min_ms=1e3 * min(t_torch), torch_median_ms=1e3 * med_torch,
                           ort_min_ms=1e3 * min(t_ort), ort_median_ms=1e3 * med_ort,
                           torch_per_s=batch / med_torch, ort_per_s=batch / med_ort,
                           ratio=med_torch / med_ort, max_abs_diff=diff)
                rows.append(row)
                print(f'{tower:5} {batch:5d} | {row["torch_min_ms"]:8.1f} /{med_torch * 1e3:8.1f} | '
                      f'{row["ort_min_ms"]:8.1f} /{med_ort * 1e3:8.1f} | {row["torch_per_s"]:9.1f} '
                      f'{row["ort_per_s"]:9.1f} | {row["ratio"]:5.2f}x', flush=True)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == '__main__':
    main()
