"""Images/s of the training pipeline over the demo data, for TSV, LMDB, jsonl and WebDataset shards.

    python benchmarks/data_throughput.py [--batches 20] [--batch-size 64] [--workers 0,2]
    python benchmarks/data_throughput.py --jpeg-only [--reps 5]   # real-size JPEG section only

Converts the demo set (generated if missing) to LMDB, to an image folder + jsonl and to 8 tar
shards in a temp dir, then times full passes of LoadImage -> RandomResizedCrop -> CleanCaption -> TokenizeText ->
PackCLIPInputs through a DataLoader (pseudo_collate), after one warm-up batch.

Then real-size JPEGs (500x375 to 1024x768, quality 90), single process, 224 px: the reference
pipeline (PIL open, RGB, bicubic resize, to float tensor, normalise, per image) against
``LoadResizeImage`` (uint8) + one batch normalisation, exact and with ``draft=True``.
"""
import argparse
import base64
import json
import os
import os.path as osp
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

from cnclip_mm.datasets import ensure_demo_data  # noqa: E402
from cnclip_mm.datasets.lmdb_writer import build_lmdb  # noqa: E402
from cnclip_mm.datasets.shard_writer import write_shards  # noqa: E402
from cnclip_mm.registry import DATASETS  # noqa: E402


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
    import io

    import numpy as np
    from PIL import Image, ImageDraw
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


def jpeg_section(count: int, reps: int, size: int = 224) -> dict:
    """Reference vs our decode+resize pipelines on real-size JPEGs: images/s (min/median), ratio."""
    import io
    import statistics

    import numpy as np
    import torch
    from PIL import Image

    from cnclip_mm.datasets.transforms.fast_loading import decode_resize
    from cnclip_mm.models.data_preprocessor import CLIP_MEAN, CLIP_STD, CLIPDataPreprocessor

    jpegs = make_jpegs(count)
    torch.set_num_threads(1)  # as in a dataloader worker; many threads on tiny tensors only stall
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    norm = CLIPDataPreprocessor()

    def reference():
        tensors = []
        for data in jpegs:
            img = Image.open(io.BytesIO(data)).convert('RGB').resize((size, size), Image.BICUBIC)
            t = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous().float().div(255)
            tensors.append((t - mean) / std)
        return torch.stack(tensors)

    def ours(draft):
        # As in training / testing: PackCLIPInputs makes a CHW uint8 tensor per image, the data
        # preprocessor stacks and normalises the batch.
        chw = [torch.from_numpy(np.ascontiguousarray(decode_resize(data, (size, size), draft)[0].transpose(2, 0, 1)))
               for data in jpegs]
        return norm.normalize(torch.stack(chw))

    pipelines = {'reference': reference, 'ours': lambda: ours(False), 'ours draft': lambda: ours(True)}
    outputs = {name: fn() for name, fn in pipelines.items()}  # warm-up + results to compare
    rates = {name: [] for name in pipelines}
    for _ in range(reps):  # interleaved: one pass of each per repetition
        for name, fn in pipelines.items():
            start = time.perf_counter()
            fn()
            rates[name].append(count / (time.perf_counter() - start))
    ref = outputs['reference']
    std255 = (std * 255).view(1, 3, 1, 1)
    print(f'real-size JPEGs (500x375..1024x768, q90) -> {size}px normalised, {count} images, {reps} reps, '
          '1 process')
    print('| pipeline | images/s max / median | ratio to reference (max) | max |diff| (normalised) | '
          'mean |diff| (0-255 levels) |')
    print('|---|---|---|---|---|')
    for name, values in rates.items():
        diff = (outputs[name] - ref).abs()
        levels = (diff * std255).mean().item()
        print(f'| {name} | {max(values):.0f} / {statistics.median(values):.0f} | '
              f'{max(values) / max(rates["reference"]):.2f} | {diff.max().item():.1e} | {levels:.2f} |',
              flush=True)
    return {name: (max(v), statistics.median(v)) for name, v in rates.items()}


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
    args = parser.parse_args(argv)
    init_default_scope('cnclip_mm')
    if args.jpeg_only:
        return jpeg_section(args.jpegs, args.reps)
    demo = ensure_demo_data(args.demo_root)
    tokenizer = dict(type='ChineseTokenizer', vocab_file=osp.join(demo, 'vocab.txt'), context_length=32)
    pipeline = [dict(type='LoadImage'), dict(type='RandomResizedCrop', scale=args.img_size),
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
    results['jpeg'] = jpeg_section(args.jpegs, args.reps)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
