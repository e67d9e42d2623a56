"""Feature extraction: our ChineseCLIP vs transformers' ChineseCLIPModel, same weights, CPU.

ViT-B/16 + RoBERTa-base. Images: batch 32 at 224 px; texts: batch 256 at context 52 with caption
lengths drawn from 8..52 tokens ("mixed") and all 52 long ("full"). Ours runs the path of
``encode_images`` / ``encode_texts`` / tools/test.py (``extract_image_feat`` / ``extract_text_feat``
under ``torch.inference_mode``, inside ``cnclip_mm.cpu.cpu_speed`` as on a CPU); HF runs ``get_image_features`` / ``get_text_features``. A and B alternate
within each repetition; min and median ms and the ratio of the minimums (HF / ours: > 1 means ours
is faster) are printed, with the largest difference of the L2-normalised features, and the cosine of
our opt-in bf16 path (``bf16=True`` of the inference APIs: ``cnclip_mm.cpu.bf16_autocast``) to fp32.

    python benchmarks/extract.py [--reps 5] [--threads N]
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, osp.join(REPO, 'benchmarks'))
from train_step import CONTEXT, _build_hf, _build_ours  # noqa: E402


def text_batch(n: int, full: bool, seed: int = 2) -> torch.Tensor:
    """Token ids ``[n, 52]``: [CLS] tokens [SEP] then zero padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(106, 21128, (n, CONTEXT), generator=g)
    lengths = torch.full((n,), CONTEXT - 1) if full else torch.randint(7, CONTEXT, (n,), generator=g)
    ids[:, 0] = 101
    for i, length in enumerate(lengths.tolist()):
        ids[i, length] = 102
        ids[i, length + 1:] = 0
    return ids


CLOCK = time.perf_counter


def _time(fn: Callable[[], torch.Tensor]) -> float:
    start = CLOCK()
    fn()
    return (CLOCK() - start) * 1000


def with_cpu_speed(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``fn`` run inside ``cpu_speed`` (on, at the thread count already set), as our inference APIs run."""
    from cnclip_mm.cpu import cpu_speed

    def run():
        with cpu_speed(True, threads=torch.get_num_threads()):
            return fn()
    return run


def compare(name: str, ours: Callable, hf: Callable, reps: int) -> Dict:
    """Interleaved timing of two feature functions plus their largest feature difference."""
    ours = with_cpu_speed(ours)
    with torch.inference_mode():
        a, b = ours(), hf()  # warm-up, and the outputs to compare
        diff = (a - b).abs().max().item()
        times = {'ours': [], 'hf': []}
        for rep in range(reps):
            order = (('ours', ours), ('hf', hf)) if rep % 2 == 0 else (('hf', hf), ('ours', ours))
            for key, fn in order:
                times[key].append(_time(fn))
    row = dict(name=name, diff=diff)
    for key, values in times.items():
        row[key] = (min(values), statistics.median(values))
    row['ratio'] = row['hf'][0] / row['ours'][0]
    print(f"| {name} | {row['ours'][0]:.0f} / {row['ours'][1]:.0f} | {row['hf'][0]:.0f} / {row['hf'][1]:.0f} | "
          f"{row['ratio']:.2f} | {diff:.1e} |", flush=True)
    return row


def bf16_cosine(fn: Callable, reference: torch.Tensor) -> float:
    from cnclip_mm.cpu import bf16_autocast
    with torch.inference_mode(), bf16_autocast('cpu'):
        low = with_cpu_speed(fn)().float()
    return F.cosine_similarity(low, reference, dim=-1).min().item()


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--image-batch', type=int, default=32)
    parser.add_argument('--text-batch', type=int, default=256)
    parser.add_argument('--clock', choices=['wall', 'process'], default='wall',
                        help='process: CPU seconds of this process (with --threads 1, robust on a '
                        'machine other jobs load)')
    parser.add_argument('--rows', default='images,mixed,full', help='which rows to time')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == 'process' else time.perf_counter
    ours = _build_ours().eval()
    hf = _build_hf(ours).eval()
    images = torch.randn(args.image_batch, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    texts = {kind: text_batch(args.text_batch, kind == 'full') for kind in ('mixed', 'full')}

    def hf_image():
        return F.normalize(hf.get_image_features(pixel_values=images).pooler_output, dim=-1)

    def hf_text(ids):
        out = hf.get_text_features(input_ids=ids, attention_mask=(ids != 0).long())
        return F.normalize(out.pooler_output, dim=-1)

    print(f'ViT-B/16 + RoBERTa-base, CPU, {args.threads} threads, {args.reps} interleaved reps, fp32, '
          f'{args.clock} clock')
    print('| batch | ours ms min / median | HF ms min / median | HF/ours (min) | max |feature diff| |')
    print('|---|---|---|---|---|')
    wanted = args.rows.split(',')
    rows = [compare(f'images {args.image_batch}x224', lambda: ours.extract_image_feat(images), hf_image,
                    args.reps)] if 'images' in wanted else []
    for kind, ids in texts.items():
        if kind not in wanted:
            continue
        rows.append(compare(f'texts {args.text_batch}x52 {kind}', lambda ids=ids: ours.extract_text_feat(ids),
                            lambda ids=ids: hf_text(ids), args.reps))
    with torch.inference_mode():
        ref_img, ref_txt = ours.extract_image_feat(images), ours.extract_text_feat(texts['mixed'])
    print(f"bf16 autocast (opt-in) vs fp32, min cosine: images "
          f"{bf16_cosine(lambda: ours.extract_image_feat(images), ref_img):.5f}, texts "
          f"{bf16_cosine(lambda: ours.extract_text_feat(texts['mixed']), ref_txt):.5f}")
    return rows


if __name__ == '__main__':
    main()
