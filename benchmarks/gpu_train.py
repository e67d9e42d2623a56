"""Training throughput on a GPU: our ChineseCLIP against transformers' ChineseCLIPModel, same weights.

ViT-B/16 + RoBERTa-base (configs/_base_/models/vit-b-16.py), random weights; HF's model gets the same
weights through ``cnclip_mm.models.converters.mm_to_hf``. One batch of random images and captions of
8..52 tokens goes through ``clip_collate`` (ids trimmed to a multiple of 8) and our data preprocessor, so
both models see the same tensors. One step = forward, symmetric contrastive loss, backward, AdamW step
(fused on CUDA), under bf16 autocast or fp16 AMP (autocast + ``GradScaler``), eager or ``torch.compile``d.

Printed per run (one line each, ``key=value``): samples/s over the timed steps, peak memory
(``torch.cuda.max_memory_allocated`` from the model's build on; ``-`` off CUDA) and MFU: model FLOPs per
sample (:func:`train_flops_per_sample`: 132 GFLOP for ViT-B/16 at 52 tokens, the text part scaled by the
batch's length) times samples/s over ``--peak-tflops`` (default 989: H100/H200 bf16 dense). Then one
``ratio`` line per precision and mode: ours/HF samples/s (> 1: ours is faster).

    python benchmarks/gpu_train.py [--batch 128] [--steps 20] [--precisions bf16,fp16] [--modes eager,compiled]
    python benchmarks/gpu_train.py --tiny --device cpu   # smoke run: tiny widths, 2 steps (tests use it)
"""
import argparse
import gc
import os.path as osp
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

MODEL_CONFIGS = {False: 'vit-b-16.py', True: 'tiny.py'}
PRECISIONS = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': None}
MIN_CAPTION = 8  # shortest caption drawn, [CLS] and [SEP] included


def model_config(tiny: bool):
    """The model config and its context length (configs/_base_/models)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', MODEL_CONFIGS[tiny]))
    model = cfg.model
    model.tokenizer = None
    return model, cfg.tokenizer.context_length


def build_ours(cfg, state: Optional[dict] = None):
    """Our ``ChineseCLIP`` from ``cfg``; seeded random weights, or ``state``."""
    from mmengine.registry import init_default_scope

    from cnclip_mm.registry import MODELS
    init_default_scope('cnclip_mm')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    if state is not None:
        model.load_state_dict(state)
    return model


def build_hf(ours):
    """transformers' ``ChineseCLIPModel`` holding ``ours``'s weights."""
    from transformers import ChineseCLIPModel

    from cnclip_mm.models.converters import build_hf_config, mm_to_hf
    hf = ChineseCLIPModel(build_hf_config(ours))
    hf.load_state_dict(mm_to_hf({k: v.detach() for k, v in ours.state_dict().items()}), strict=True)
    return hf


def caption_batch(n: int, context: int, seed: int = 1) -> torch.Tensor:
    """Token ids ``[n, context]``: [CLS], random tokens, [SEP], zero padding; lengths drawn in 8..context."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(106, 21128, (n, context), generator=g)
    lengths = torch.randint(MIN_CAPTION, context + 1, (n,), generator=g)
    ids[:, 0] = 101
    for row, length in enumerate(lengths.tolist()):
        ids[row, length - 1] = 102
        ids[row, length:] = 0
    return ids


def collated_inputs(ours, n: int, img_size: int, context: int, with_images: bool = True,
                    with_texts: bool = True) -> dict:
    """Model inputs as the runner makes them: samples -> ``clip_collate`` -> our data preprocessor."""
    from cnclip_mm.datasets.collate import clip_collate
    from cnclip_mm.structures import DataSample
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, img_size, img_size), generator=g, dtype=torch.uint8)
    ids = caption_batch(n, context)
    samples = []
    for row in range(n):
        sample = DataSample()
        if with_texts:
            sample.text_ids = ids[row]
        samples.append(dict(inputs=images[row] if with_images else None, data_samples=sample))
    return ours.data_preprocessor(clip_collate(samples, pad_to_multiple_of=8))['inputs']


def _vision_macs(shapes: Dict[str, torch.Size]) -> int:
    """Multiply-adds of one image through the ViT (patch embedding, blocks, projection)."""
    width, _, patch, _ = shapes['image_encoder.conv1.weight']
    tokens = shapes['image_encoder.positional_embedding'][0]
    hidden = shapes['image_encoder.transformer.resblocks.0.mlp.c_fc.weight'][0]
    layers = len({k.split('.')[3] for k in shapes if k.startswith('image_encoder.transformer.resblocks.')})
    block = tokens * (4 * width * width + 2 * width * hidden) + 2 * tokens * tokens * width
    projection = width * shapes['image_encoder.proj'][1]
    return (tokens - 1) * width * 3 * patch * patch + layers * block + projection


def _text_macs(shapes: Dict[str, torch.Size], length: int) -> int:
    """Multiply-adds of one caption of ``length`` tokens through BERT and the text projection."""
    prefix = 'text_encoder.bert.encoder.layer.'
    width, embed = shapes['text_projection']
    hidden = shapes[prefix + '0.intermediate.dense.weight'][0]
    layers = len({k[len(prefix):].split('.')[0] for k in shapes if k.startswith(prefix)})
    layer = length * (4 * width * width + 2 * width * hidden) + 2 * length * length * width
    return layers * layer + width * embed


def train_flops_per_sample(shapes: Dict[str, torch.Size], text_length: int) -> float:
    """Model FLOPs of one (image, caption) pair in a training step: 2 per multiply-add, backward twice the
    forward. Matrix products only (the usual MFU count); recomputation by checkpointing is not counted.

    ViT-B/16 + RoBERTa-base at 52 tokens: 105.4 (image) + 26.8 (text) = 132.2 GFLOP.
    """
    return 6.0 * (_vision_macs(shapes) + _text_macs(shapes, text_length))


def shapes_of(state: dict) -> Dict[str, torch.Size]:
    return {k: v.shape for k, v in state.items()}


def synchronize(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)


def peak_memory_gib(device: str) -> str:
    if device.startswith('cuda'):
        return f'{torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f}'
    return '-'


def fresh_run(device: str) -> None:
    """Free what the previous run held and start the peak-memory and compile records anew."""
    gc.collect()
    torch._dynamo.reset()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timed(step: Callable[[], None], device: str, warmup: int, steps: int) -> float:
    """Seconds of ``steps`` calls of ``step`` after ``warmup`` untimed ones (compilation happens there)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - start


def _loss_fn(impl: str, model, inputs: dict) -> Callable[[], torch.Tensor]:
    if impl == 'ours':
        return lambda: model(inputs, mode='loss')['loss']
    ids = inputs['text_ids']
    mask = (ids != 0).long()
    return lambda: model(input_ids=ids, attention_mask=mask, pixel_values=inputs['images'],
                         return_loss=True).loss


def train_step_fn(impl: str, model, inputs: dict, precision: str, device: str) -> Callable[[], None]:
    """One optimizer step of ``model`` on ``inputs``: autocast at ``precision``, a GradScaler for fp16."""
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2,
                              fused=device.startswith('cuda'))
    dtype = PRECISIONS[precision]
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=dtype == torch.float16)
    loss_fn = _loss_fn(impl, model, inputs)

    def step() -> None:
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn()
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        optim.zero_grad(set_to_none=True)

    return step


def set_grad_checkpointing(impl: str, model) -> None:
    if impl == 'ours':
        model.set_grad_checkpointing(True)
    elif hasattr(model, 'activation_checkpointing_enable'):  # transformers >= 5
        model.activation_checkpointing_enable(dict(use_reentrant=False))
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(use_reentrant=False))


def run_one(impl: str, precision: str, mode: str, args, cfg, state: dict, inputs: dict) -> float:
    """Samples/s of one implementation, precision and mode; prints its line."""
    fresh_run(args.device)
    ours = build_ours(cfg, state)
    model = (ours if impl == 'ours' else build_hf(ours)).to(args.device).train()
    if impl != 'ours':
        del ours
    if args.grad_ckpt:
        set_grad_checkpointing(impl, model)
    if mode == 'compiled':
        model = torch.compile(model, backend=args.backend)
    step = train_step_fn(impl, model, inputs, precision, args.device)
    seconds = timed(step, args.device, args.warmup, args.steps)
    rate = args.batch * args.steps / seconds
    length = inputs['text_ids'].shape[1]
    mfu = rate * train_flops_per_sample(shapes_of(state), length) / (args.peak_tflops * 1e12)
    print(f'train impl={impl} precision={precision} mode={mode} batch={args.batch} text_len={length} '
          f'samples_per_s={rate:.2f} peak_mem_gib={peak_memory_gib(args.device)} mfu={mfu:.4g}', flush=True)
    return rate


def common_parser(description: str, batch: int) -> argparse.ArgumentParser:
    """The flags gpu_train.py and gpu_extract.py share; read them with :func:`parse_args`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, help=f'samples per step (default {batch}; --tiny: 4)')
    parser.add_argument('--steps', type=int, help='timed steps (default 20; --tiny: 2)')
    parser.add_argument('--warmup', type=int,
                        help='untimed steps first, compilation included (default 3; --tiny: 1)')
    parser.add_argument('--precisions', default='bf16,fp16', help='of bf16, fp16, fp32')
    parser.add_argument('--modes', default='eager,compiled', help='of eager, compiled')
    parser.add_argument('--impls', default='ours,hf', help='of ours, hf')
    parser.add_argument('--backend', default='inductor', help='torch.compile backend')
    parser.add_argument('--tiny', action='store_true', help='tiny model (configs/_base_/models/tiny.py)')
    parser.set_defaults(default_batch=batch)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse, fill the size defaults (smaller with ``--tiny``) and split the comma lists."""
    args = parser.parse_args(argv)
    args.batch = args.batch or (4 if args.tiny else args.default_batch)
    args.steps = args.steps or (2 if args.tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    for name, allowed in (('precisions', PRECISIONS), ('modes', ('eager', 'compiled')),
                          ('impls', ('ours', 'hf'))):
        values = getattr(args, name).split(',')
        unknown = [v for v in values if v not in allowed]
        if unknown:
            parser.error(f'--{name}: unknown {unknown}; choose from {list(allowed)}')
        setattr(args, name, values)
    return args


def main(argv: Optional[List[str]] = None) -> Dict[Tuple[str, str, str], float]:
    """Run every precision x mode x implementation; return samples/s by ``(impl, precision, mode)``."""
    parser = common_parser(__doc__.splitlines()[0], batch=128)
    parser.add_argument('--peak-tflops', type=float, default=989.0,
                        help='dense peak of the GPU at the precision, for MFU (H100/H200 bf16: 989)')
    parser.add_argument('--grad-ckpt', action='store_true', help='gradient checkpointing in both models')
    args = parse_args(parser, argv)
    cfg, context = model_config(args.tiny)
    ours = build_ours(cfg)
    state = {k: v.detach().clone() for k, v in ours.state_dict().items()}
    inputs = collated_inputs(ours.to(args.device), args.batch, ours.image_encoder.img_size, context)
    del ours
    print(f'device={args.device} torch={torch.__version__} backend={args.backend} '
          f'grad_ckpt={args.grad_ckpt} peak_tflops={args.peak_tflops}', flush=True)
    rates = {}
    for precision in args.precisions:
        for mode in args.modes:
            for impl in args.impls:
                rates[impl, precision, mode] = run_one(impl, precision, mode, args, cfg, state, inputs)
            if {'ours', 'hf'} <= set(args.impls):
                print(f'ratio precision={precision} mode={mode} ours_over_hf='
                      f'{rates["ours", precision, mode] / rates["hf", precision, mode]:.3f}', flush=True)
    return rates


if __name__ == '__main__':
    main()
