"""ONNX Runtime against PyTorch on CPU, both towers, same weights, in one run.

Three backends compute the L2-normalised features of one ViT-B/16 + RoBERTa-base Chinese CLIP (random
weights, fp32): transformers' ``ChineseCLIPModel`` (the port of the official code, the "official-style
PyTorch model"; ``get_image_features`` / ``get_text_features``), this project's PyTorch model as the
inferencers run it (inference mode inside ``cpu_speed``, here at the benchmark's thread count), the
exported towers in ONNX Runtime (``OrtBackend``) and the same towers exported with ``precision='int8'``
(onnxruntime's dynamic quantisation of the MatMuls); every backend gets the same thread count. Inputs: one 224 px image, one caption of 12 tokens and one that fills the
52-token context (no padding). Runs alternate within each repetition, so other load hits all alike;
prints min / median ms and the ratio of the medians (> 1: ONNX Runtime faster), with the largest
difference of the fp32 features from the official-style model's and the lowest cosine of the int8 ones.

    python benchmarks/deploy_cpu.py                      # batch 1, threads = the CPUs this process may use
    python benchmarks/deploy_cpu.py --batches 1 32 --reps 20 --out work_dirs/deploy_cpu.json
    python benchmarks/deploy_cpu.py --tiny --reps 2      # the tiny test model, seconds (tests run this)
    python benchmarks/deploy_cpu.py --threads 1 --profile work_dirs/ort_profile   # + where ORT's time goes
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from functools import partial

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MODEL_CONFIGS = {'vit-b-16': 'configs/_base_/models/vit-b-16.py', 'tiny': 'configs/_base_/models/tiny.py'}


def build_models(config: str):
    """Ours (random weights, seed 0) and transformers' ``ChineseCLIPModel`` holding the same weights."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from transformers import ChineseCLIPModel

    from cnclip_mm.models.converters import build_hf_config, mm_to_hf
    from cnclip_mm.registry import MODELS
    from cnclip_mm.utils import share_tokenizer
    init_default_scope('cnclip_mm')
    torch.manual_seed(0)
    ours = MODELS.build(share_tokenizer(Config.fromfile(osp.join(REPO, config)).to_dict())['model']).eval()
    hf = ChineseCLIPModel(build_hf_config(ours)).eval()
    hf.load_state_dict(mm_to_hf({k: v.detach() for k, v in ours.state_dict().items()}), strict=True)
    return ours, hf


def caption(batch: int, length: int, vocab_size: int) -> torch.Tensor:
    """``[batch, length]`` ids: [CLS], random tokens, [SEP]; no padding (all backends get the same ids)."""
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(106, vocab_size, (batch, length), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids


def interleaved(fns: dict, reps: int) -> dict:
    """ms per call of each callable, alternating them ``reps`` times after one warm-up each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for rep in range(reps):
        order = list(fns.items()) if rep % 2 == 0 else list(fns.items())[::-1]
        for name, fn in order:
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[1])
    parser.add_argument('--reps', type=int, default=20, help='timed runs per backend and case')
    parser.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument('--tiny', action='store_true', help='the tiny test model instead of ViT-B/16')
    parser.add_argument('--onnx-dir', help='reuse the exports of the same model, in ONNX_DIR/fp32 and ONNX_DIR/int8 '
                        '(default: a temporary folder)')
    parser.add_argument('--out', help='write the rows as JSON')
    parser.add_argument('--profile', metavar='PREFIX',
                        help="write onnxruntime's per-node profiles to PREFIX_* and print each tower's share "
                             'of kernel time per operator type')
    args = parser.parse_args(argv)

    from cnclip_mm.cpu import cpu_speed
    from cnclip_mm.deployment import OrtBackend, export_towers, op_time_shares
    torch.set_num_threads(args.threads)
    ours, hf = build_models(MODEL_CONFIGS['tiny' if args.tiny else 'vit-b-16'])
    scratch = None if args.onnx_dir else tempfile.TemporaryDirectory(prefix='cnclip_bench_onnx_')
    onnx_dir = args.onnx_dir or scratch.name  # a ViT-B/16 export is ~0.9 GB: removed when the run ends
    for precision in ('fp32', 'int8'):
        if not osp.isfile(osp.join(onnx_dir, precision, 'meta.json')):
            export_towers(ours, osp.join(onnx_dir, precision), precision=precision)
    if args.profile:
        os.makedirs(osp.dirname(osp.abspath(args.profile)), exist_ok=True)
    ort = OrtBackend(osp.join(onnx_dir, 'fp32'), num_threads=args.threads, profile_prefix=args.profile)
    int8 = OrtBackend(osp.join(onnx_dir, 'int8'), num_threads=args.threads)

    def own(extract, inputs):  # as the inferencers run it, at the benchmark's thread count
        with cpu_speed(True, threads=args.threads):
            return extract(inputs).float()
    size, context = ort.meta['image_size'], ort.meta['context_length']
    vocab = ours.text_encoder.bert.config.vocab_size
    cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name')),
               'unknown CPU')
    print(f'{cpu}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, '
          f'{"tiny" if args.tiny else "ViT-B/16"} towers, {args.reps} interleaved runs per case')
    print('| tower | batch | official-style PyTorch min / median ms | ours | ONNX Runtime | ORT int8 | '
          'ORT vs official-style | ORT vs ours | ORT int8 vs official-style | max abs diff | int8 min cosine |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    def official_image(images):
        return F.normalize(hf.get_image_features(pixel_values=images).pooler_output, dim=-1)

    def official_text(ids):
        return F.normalize(hf.get_text_features(input_ids=ids, attention_mask=(ids != 0).long()).pooler_output,
                           dim=-1)

    rows = []
    for batch in args.batches:
        images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        cases = [('image', images, official_image, partial(own, ours.extract_image_feat), ort.image_feats,
                  int8.image_feats)]
        cases += [(f'text ({length} tokens)', caption(batch, length, vocab), official_text,
                   partial(own, ours.extract_text_feat), ort.text_feats, int8.text_feats)
                  for length in sorted({min(12, context), context})]
        for name, inputs, official, own, onnx, onnx_int8 in cases:
            fns = {'official': partial(official, inputs), 'ours': partial(own, inputs), 'ort': partial(onnx, inputs),
                   'ort_int8': partial(onnx_int8, inputs)}
            with torch.inference_mode():
                ref = fns['official']()
                diff = max(float((fns[k]() - ref).abs().max()) for k in ('ours', 'ort'))
                cosine = float(F.cosine_similarity(fns['ort_int8'](), ref, dim=-1).min())
                times = interleaved(fns, args.reps)
            med = {k: statistics.median(v) for k, v in times.items()}
            row = dict(tower=name, batch=batch, threads=args.threads, reps=args.reps, max_abs_diff=diff,
                       int8_min_cosine=cosine,
                       **{f'{k}_min_ms': min(v) for k, v in times.items()},
                       **{f'{k}_median_ms': m for k, m in med.items()},
                       ort_vs_official=med['official'] / med['ort'], ort_vs_ours=med['ours'] / med['ort'],
                       ort_int8_vs_official=med['official'] / med['ort_int8'])
            rows.append(row)
            cells = ' | '.join(f'{min(times[k]):.1f} / {med[k]:.1f}' for k in ('official', 'ours', 'ort', 'ort_int8'))
            print(f'| {name} | {batch} | {cells} | {row["ort_vs_official"]:.2f}x | {row["ort_vs_ours"]:.2f}x | '
                  f'{row["ort_int8_vs_official"]:.2f}x | {diff:.1e} | {cosine:.5f} |', flush=True)
    if args.profile:
        for tower, path in ort.end_profiling().items():
            shares = op_time_shares(path)
            top = ', '.join(f'{op} {share:.0%}' for op, share in list(shares.items())[:6])
            print(f'ONNX Runtime {tower} tower, share of kernel time (all its runs): {top}; {path}')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
    if scratch is not None:
        scratch.cleanup()
    return rows


if __name__ == '__main__':
    main()
