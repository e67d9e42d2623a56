"""Feature extraction on a GPU: our ChineseCLIP against transformers' ChineseCLIPModel, same weights.

ViT-B/16 + RoBERTa-base with random weights, HF's model holding ours (as in gpu_train.py). Images: a batch
at 224 px through ``extract_image_feat`` (ours) and ``get_image_features`` (HF); texts: captions of 8..52
tokens, trimmed by ``clip_collate`` to a multiple of 8, through ``extract_text_feat`` and
``get_text_features`` (with the attention mask). Under ``torch.inference_mode`` and fp16 or bf16 autocast,
eager or ``torch.compile``d.

Printed per run (``key=value``): images/s or texts/s, peak memory (``-`` off CUDA) and the lowest cosine
between our and HF's features of the same inputs (near 1: the two compute the same model); then one
``ratio`` line per kind, precision and mode: ours/HF throughput (> 1: ours is faster).

    python benchmarks/gpu_extract.py [--batch 256] [--steps 20] [--precisions bf16,fp16] [--modes eager,compiled]
    python benchmarks/gpu_extract.py --tiny --device cpu   # smoke run: tiny widths, 2 steps (tests use it)
"""
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from gpu_train import (  # noqa: E402
    PRECISIONS,
    build_hf,
    build_ours,
    collated_inputs,
    common_parser,
    fresh_run,
    model_config,
    parse_args,
    peak_memory_gib,
    timed,
)

KINDS = ('images', 'texts')


def feature_fns(impl: str, model, inputs: dict) -> Dict[str, Callable[[], torch.Tensor]]:
    """L2-normalised features of the batch's images and texts, by kind."""
    images, ids = inputs['images'], inputs['text_ids']
    if impl == 'ours':
        return dict(images=lambda: model.extract_image_feat(images), texts=lambda: model.extract_text_feat(ids))
    mask = (ids != 0).long()

    def pooled(out) -> torch.Tensor:  # transformers < 5 returns the features, >= 5 an output object
        return F.normalize(out if torch.is_tensor(out) else out.pooler_output, dim=-1)

    return dict(images=lambda: pooled(model.get_image_features(pixel_values=images)),
                texts=lambda: pooled(model.get_text_features(input_ids=ids, attention_mask=mask)))


def run_impl(impl: str, args, ours, inputs: dict, features: Dict) -> Dict[Tuple[str, str, str], float]:
    """Items/s of one implementation for every kind, precision and mode; prints a line each."""
    model = (ours if impl == 'ours' else build_hf(ours)).to(args.device).eval()
    device_type = torch.device(args.device).type
    rates = {}
    for kind in KINDS:
        for precision in args.precisions:
            for mode in args.modes:
                fresh_run(args.device)
                fn = feature_fns(impl, model, inputs)[kind]
                if mode == 'compiled':
                    fn = torch.compile(fn, backend=args.backend)
                dtype = PRECISIONS[precision]

                def extract(fn=fn, dtype=dtype) -> torch.Tensor:
                    with torch.inference_mode(), torch.autocast(device_type, dtype=dtype,
                                                                enabled=dtype is not None):
                        return fn()

                seconds = timed(extract, args.device, args.warmup, args.steps)
                rate = rates[kind, precision, mode] = args.batch * args.steps / seconds
                feats = extract().float().cpu()
                key = kind, precision, mode
                agreement = ''
                if key in features:
                    cosine = F.cosine_similarity(features[key], feats, dim=-1).min().item()
                    agreement = f' min_cosine_to_ours={cosine:.4f}'
                features[key] = feats
                print(f'extract impl={impl} kind={kind} precision={precision} mode={mode} batch={args.batch} '
                      f'text_len={inputs["text_ids"].shape[1]} items_per_s={rate:.2f} '
                      f'peak_mem_gib={peak_memory_gib(args.device)}{agreement}', flush=True)
    model.cpu()
    return rates


def main(argv: Optional[List[str]] = None) -> Dict[Tuple[str, str, str, str], float]:
    """Run every implementation x kind x precision x mode; return items/s by ``(impl, kind, precision, mode)``."""
    args = parse_args(common_parser(__doc__.splitlines()[0], batch=256), argv)
    cfg, context = model_config(args.tiny)
    ours = build_ours(cfg)
    inputs = collated_inputs(ours.to(args.device), args.batch, ours.image_encoder.img_size, context)
    ours.cpu()
    print(f'device={args.device} torch={torch.__version__} backend={args.backend}', flush=True)
    rates, features = {}, {}
    for impl in args.impls:  # one model on the device at a time: its own peak memory
        for key, rate in run_impl(impl, args, ours, inputs, features).items():
            rates[(impl, *key)] = rate
    if {'ours', 'hf'} <= set(args.impls):
        for kind in KINDS:
            for precision in args.precisions:
                for mode in args.modes:
                    ratio = rates['ours', kind, precision, mode] / rates['hf', kind, precision, mode]
                    print(f'ratio kind={kind} precision={precision} mode={mode} ours_over_hf={ratio:.3f}',
                          flush=True)
    return rates


if __name__ == '__main__':
    main()
