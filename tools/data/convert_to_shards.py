"""Write WebDataset tar shards (img2dataset layout: KEY.jpg + KEY.txt + KEY.json) from TSV, LMDB or jsonl.

    python tools/data/convert_to_shards.py --format tsv --data-root data/muge --split train \\
        --out-dir data/muge/shards/train --samples-per-shard 10000
    python tools/data/convert_to_shards.py --format lmdb --data-root data/muge --split train --out-dir ...
    python tools/data/convert_to_shards.py --format jsonl --data-root my --ann-file captions.jsonl \\
        --img-dir images --out-dir my/shards

Train with ``dict(type='WebDatasetImageText', shards='.../{00000..00127}.tar')`` (docs/training.md).
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout, uninstalled


SOURCES = {'tsv': 'ImageTextTSVDataset', 'lmdb': 'ImageTextLMDBDataset', 'jsonl': 'ImageTextJsonlDataset'}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--format', choices=sorted(SOURCES), required=True,
                        help='tsv: official {split}_imgs.tsv + _texts.jsonl; lmdb: official lmdb/{split}; '
                        'jsonl: {"image", "caption"} lines + an image folder')
    parser.add_argument('--data-root', required=True)
    parser.add_argument('--split', default='train', help='tsv / lmdb split')
    parser.add_argument('--ann-file', default='captions.jsonl', help='jsonl: caption file (under data-root)')
    parser.add_argument('--img-dir', default='images', help='jsonl: image folder (under data-root)')
    parser.add_argument('--lmdb-dir', default='lmdb', help='lmdb: folder under data-root')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--samples-per-shard', type=int, default=10000)
    parser.add_argument('--max-shard-mb', type=float, default=1000, help='target shard size in MB')
    parser.add_argument('--shuffle-seed', type=int, default=None, help='permute the pairs before writing')
    parser.add_argument('--on-bad-sample', choices=['error', 'skip'], default='error')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, int]:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    from cnclip_mm.datasets.shard_writer import write_shards
    from cnclip_mm.registry import DATASETS
    init_default_scope('cnclip_mm')
    cfg = dict(type=SOURCES[args.format], data_root=args.data_root, on_bad_sample=args.on_bad_sample,
               pipeline=[])
    if args.format == 'jsonl':
        cfg.update(ann_file=args.ann_file, img_dir=args.img_dir)
    else:
        cfg.update(split=args.split, **({'lmdb_dir': args.lmdb_dir} if args.format == 'lmdb' else {}))
    dataset = DATASETS.build(cfg)
    sizes = write_shards(dataset, args.out_dir, args.samples_per_shard, args.max_shard_mb * 1e6,
                         args.shuffle_seed, show_progress=not args.no_progress)
    skipped = dataset.bad_samples.report(f'{dataset.name} while writing shards')
    print(f'{sum(sizes.values())} samples in {len(sizes)} shards -> {args.out_dir}'
          + (f' ({skipped} bad skipped)' if skipped else ''))
    return sizes


if __name__ == '__main__':
    main(sys.argv[1:])
