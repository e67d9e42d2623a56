"""Images/s of the training pipeline over the demo data, for TSV, LMDB, jsonl and WebDataset shards.

    python benchmarks/data_throughput.py [--batches 20] [--batch-size 64] [--workers 0,2]
    python benchmarks/data_throughput.py --jpeg-only [--reps 5]   # real-size JPEG section only

Converts the demo set (generated if missing) to LMDB, to an image folder + jsonl and to 8 tar
shards in a temp dir, then times full passes of LoadRandomResizedCrop -> CleanCaption -> TokenizeText ->
PackCLIPInputs through a DataLoader (pseudo_collate), after one warm-up batch (the demo's PNGs take
the exact path).

Then real-size JPEGs (500x375 to 1024x768, quality 90), one thread, 224 px (``--jpeg-size``),
interleaved passes: the official training preprocessing (PIL decode, random-resized crop 0.9-1.0
bicubic, RGB, float tensor, normalise, per image; written here from its rules) against the image
steps of the config's ``train_pipeline`` (``--config``, default configs/_base_/datasets/muge.py) +
one batch normalisation, with the default decoder, with Pillow's, and with exact pixels
(``draft=False``). Images per CPU-second (per core) and per wall second, the ratio, the CPU model,
and the mean pixel difference of the draft path from the exact one on the same crops.
"""
import argparse
import base64
import io
import json
import math
import os
import os.path as osp
import platform
import random
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

from cnclip_mm.datasets import ensure_demo_data  # noqa: E402
from cnclip_mm.datasets.lmdb_writer import build_lmdb  # noqa: E402
from cnclip_mm.datasets.shard_writer import write_shards  # noqa: E402
from cnclip_mm.registry import DATASETS  # noqa: E402

DEFAULT_CONFIG = str(Path(__file__).resolve().parents[1] / 'configs' / '_base_' / 'datasets' / 'muge.py')


def export_jsonl(demo: str, out: str) -> None:
    """The demo train split as images/*.png + captions.jsonl (the ImageTextJsonlDataset form)."""
    os.makedirs(osp.join(out, 'images'), exist_ok=True)
    images = {}
    with open(osp.join(demo, 'train_imgs.tsv')) as f:
        for line in f:
            image_id, b64 = line.rstrip('\n').split('\t')
            name = f'{image_id}.png'
            with open(osp.join(out, 'images', name), 'wb') as img:
                img.write(base64.urlsafe_b64decode(b64))
            images[int(image_id)] = name
    with open(osp.join(demo, 'train_texts.jsonl'), encoding='utf-8') as f, \
            open(osp.join(out, 'captions.jsonl'), 'w', encoding='utf-8') as out_f:
        for line in f:
            obj = json.loads(line)
            for image_id in obj['image_ids']:
                out_f.write(json.dumps(dict(image=images[image_id], caption=obj['text']), ensure_ascii=False) + '\n')


def measure(dataset, workers: int, batch_size: int, batches: int) -> float:
    streamed = isinstance(dataset, IterableDataset)  # shuffles itself (shard order + buffer)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=not streamed,
                        collate_fn=pseudo_collate, persistent_workers=False, drop_last=True)
    count, start = 0, None
    for i, batch in enumerate(loader):
        if i == 0:  # warm-up: worker start, file handles
            start = time.perf_counter()
            continue
        count += len(batch['inputs'])
        if i >= batches:
            break
    return count / (time.perf_counter() - start)


def make_jpegs(count: int, seed: int = 0) -> List[bytes]:
    """Photo-like JPEGs (smooth gradients, shapes, noise) cycling through four real-world sizes."""
    from PIL import ImageDraw
    rng = np.random.default_rng(seed)
    sizes = [(500, 375), (640, 480), (800, 600), (1024, 768)]
    out = []
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in rng.uniform(0, 6, 3)], -1)
        pixels = np.clip(128 + 90 * base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels)
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            draw.ellipse([x0, y0, x0 + int(rng.integers(20, w // 3)), y0 + int(rng.integers(20, h // 3))],
                         fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        buf = io.BytesIO()
        img.save(buf, format='JPEG', quality=90)
        out.append(buf.getvalue())
    return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def official_random_resized_crop(img, size: int, crop_scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
    """The official training crop (torchvision's RandomResizedCrop under timm), written from its rules:
    up to 10 draws of an area fraction in ``crop_scale`` and a log-uniform aspect in ``ratio``, the first
    box that fits at a uniform position, else the largest centre box in range; crop, bicubic resize."""
    width, height = img.size
    for _ in range(10):
        area = width * height * random.uniform(*crop_scale)
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = random.randint(0, height - h), random.randint(0, width - w)
            break
    else:
        w, h = width, height
        if width / height < ratio[0]:
            h = int(round(width / ratio[0]))
        elif width / height > ratio[1]:
            w = int(round(height * ratio[1]))
        top, left = (height - h) // 2, (width - w) // 2
    return img.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)


def config_image_pipeline(config: str, size: int, **overrides):
    """The image steps of ``config``'s ``train_pipeline`` (text steps dropped), at ``size`` px."""
    from mmengine.config import Config
    from mmengine.dataset import Compose
    steps = []
    for step in Config.fromfile(config).train_pipeline:
        if step['type'] in ('CleanCaption', 'TokenizeText'):
            continue
        step = dict(step)
        if 'scale' in step:
            step.update(scale=size, **(overrides if step['type'] == 'LoadRandomResizedCrop' else {}))
        steps.append(step)
    return Compose(steps)


def jpeg_section(count: int, reps: int, size: int = 224, config: str = DEFAULT_CONFIG) -> dict:
    """Official training preprocessing vs the config's train pipeline on real-size JPEGs, 1 thread:
    images per CPU-second (= per core) and per wall second, best of ``reps`` interleaved passes."""
    import statistics

    import cv2
    import torch

    from cnclip_mm.models.data_preprocessor import CLIP_MEAN, CLIP_STD, CLIPDataPreprocessor

    jpegs = make_jpegs(count)
    torch.set_num_threads(1)  # one core, as in a dataloader worker
    cv2.setNumThreads(1)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    norm = CLIPDataPreprocessor()

    def official():
        # cn_clip's training reader: PIL open, random-resized crop (scale 0.9-1.0, bicubic), RGB,
        # ToTensor (float CHW / 255), Normalize, per image. Its AutoAugment-style policy is not in the
        # configs' train pipeline, so neither side runs one.
        tensors = []
        for data in jpegs:
            img = official_random_resized_crop(Image.open(io.BytesIO(data)), size).convert('RGB')
            tensor = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous().float().div(255)
            tensors.append((tensor - mean) / std)
        return torch.stack(tensors)

    def project(pipeline):
        # PackCLIPInputs gives a uint8 CHW tensor per image; the data preprocessor normalises the batch.
        return norm.normalize(torch.stack([pipeline(dict(img_bytes=data))['inputs'] for data in jpegs]))

    configured = config_image_pipeline(config, size)
    decoder = next((t.decoder for t in configured.transforms if hasattr(t, 'decoder')), 'none')
    variants = {f'config train pipeline (decoder {decoder})': configured,
                'config train pipeline, Pillow decoder': config_image_pipeline(config, size, decoder='pillow'),
                'exact pixels (draft=False: LoadImage + RandomResizedCrop)':
                    config_image_pipeline(config, size, draft=False)}
    if decoder == 'none':  # no LoadRandomResizedCrop: the config's pipeline only
        variants = {'config train pipeline': configured}
    elif decoder == 'pillow':
        del variants['config train pipeline, Pillow decoder']
    pipelines = {'official training preprocessing': official}
    pipelines.update({name: partial(project, pipeline) for name, pipeline in variants.items()})
    cpu_rates = {name: [] for name in pipelines}
    wall_rates = {name: [] for name in pipelines}
    for fn in pipelines.values():  # warm-up
        fn()
    for _ in range(reps):  # interleaved: one pass of each per repetition, same crop draws in each
        for name, fn in pipelines.items():
            random.seed(0)
            np.random.seed(0)
            cpu, wall = time.process_time(), time.perf_counter()
            fn()
            cpu_rates[name].append(count / (time.process_time() - cpu))
            wall_rates[name].append(count / (time.perf_counter() - wall))
    # Pixels: the draft path against the exact one on the same boxes (full decode, bicubic crop resize).
    exact_pipeline = variants.get('exact pixels (draft=False: LoadImage + RandomResizedCrop)', configured)
    np.random.seed(0)
    fast = torch.stack([configured(dict(img_bytes=d))['inputs'] for d in jpegs]).float()
    np.random.seed(0)
    exact = torch.stack([exact_pipeline(dict(img_bytes=d))['inputs'] for d in jpegs]).float()
    levels = (fast - exact).abs()
    base = max(cpu_rates['official training preprocessing'])
    print(f'real-size JPEGs (500x375..1024x768, q90) -> {size}px, {count} images, {reps} interleaved passes, '
          f'1 thread; CPU: {cpu_model()}; pipeline: {[repr(t) for t in configured.transforms]}')
    print('| pipeline | images/s per core (CPU time), best / median | images/s wall, best | ratio (per core) |')
    print('|---|---|---|---|')
    for name in pipelines:
        print(f'| {name} | {max(cpu_rates[name]):.0f} / {statistics.median(cpu_rates[name]):.0f} | '
              f'{max(wall_rates[name]):.0f} | {max(cpu_rates[name]) / base:.2f} |', flush=True)
    print(f'draft vs exact pixels, same crops: mean |diff| {levels.mean().item():.2f} levels of 255, '
          f'99th percentile {levels.flatten().kthvalue(int(0.99 * levels.numel())).values.item():.0f}')
    return {name: max(v) / base for name, v in cpu_rates.items()}


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--demo-root', default='data/demo')
    parser.add_argument('--batches', type=int, default=20, help='timed batches per run (after 1 warm-up)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', default='0,2')
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--jpeg-only', action='store_true', help='only the real-size JPEG section')
    parser.add_argument('--jpegs', type=int, default=64, help='real-size JPEGs per pass')
    parser.add_argument('--reps', type=int, default=5, help='interleaved passes of the JPEG section')
    parser.add_argument('--jpeg-size', type=int, default=224, help='output size of the JPEG section')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='config whose train_pipeline the JPEG section runs')
    args = parser.parse_args(argv)
    init_default_scope('cnclip_mm')
    if args.jpeg_only:
        return jpeg_section(args.jpegs, args.reps, args.jpeg_size, args.config)
    demo = ensure_demo_data(args.demo_root)
    tokenizer = dict(type='ChineseTokenizer', vocab_file=osp.join(demo, 'vocab.txt'), context_length=32)
    pipeline = [dict(type='LoadRandomResizedCrop', scale=args.img_size),
                dict(type='CleanCaption'), dict(type='TokenizeText', tokenizer=tokenizer),
                dict(type='PackCLIPInputs')]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        build_lmdb(demo, ['train'], osp.join(tmp, 'lmdb'), show_progress=False)
        export_jsonl(demo, osp.join(tmp, 'jsonl'))
        tsv = DATASETS.build(dict(type='ImageTextTSVDataset', data_root=demo, split='train'))
        write_shards(tsv, osp.join(tmp, 'shards'), samples_per_shard=250, show_progress=False)
        sources = {
            'tsv': dict(type='ImageTextTSVDataset', data_root=demo),
            'lmdb': dict(type='ImageTextLMDBDataset', data_root=tmp, lmdb_dir='lmdb'),
            'jsonl': dict(type='ImageTextJsonlDataset', data_root=osp.join(tmp, 'jsonl')),
            'shards': dict(type='WebDatasetImageText', shards=osp.join(tmp, 'shards', '*.tar'),
                           shuffle_buffer=1000),
        }
        workers = [int(w) for w in args.workers.split(',')]
        print(f'training pipeline, {args.img_size}px, batch {args.batch_size}, {args.batches} timed batches, '
              f'{os.cpu_count()} CPUs')
        print(f'{"format":<8}' + ''.join(f'{f"{w} workers":>14}' for w in workers) + '   (images/s)')
        for name, cfg in sources.items():
            split = {} if cfg['type'] == 'WebDatasetImageText' else dict(split='train')
            dataset = DATASETS.build(dict(cfg, pipeline=pipeline, **split))
            results[name] = {w: measure(dataset, w, args.batch_size, args.batches) for w in workers}
            print(f'{name:<8}' + ''.join(f'{results[name][w]:>14.0f}' for w in workers))
    results['jpeg'] = jpeg_section(args.jpegs, args.reps, args.jpeg_size, args.config)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
