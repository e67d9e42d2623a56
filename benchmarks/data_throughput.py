"""Images/s of the training pipeline over the demo data, for TSV, LMDB, jsonl and WebDataset shards.

    python benchmarks/data_throughput.py [--batches 20] [--batch-size 64] [--workers 0,2]

Converts the demo set (generated if missing) to LMDB, to an image folder + jsonl and to 8 tar
shards in a temp dir, then times full passes of LoadImage -> RandomResizedCrop -> CleanCaption -> TokenizeText ->
PackCLIPInputs through a DataLoader (pseudo_collate), after one warm-up batch.
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


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--demo-root', default='data/demo')
    parser.add_argument('--batches', type=int, default=20, help='timed batches per run (after 1 warm-up)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', default='0,2')
    parser.add_argument('--img-size', type=int, default=64)
    args = parser.parse_args(argv)
    init_default_scope('cnclip_mm')
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
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
