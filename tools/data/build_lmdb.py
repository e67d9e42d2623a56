"""Build the official LMDB layout (lmdb/{split}/imgs, pairs) from {split}_imgs.tsv + {split}_texts.jsonl.

    python tools/data/build_lmdb.py --data-dir data/muge --splits train,valid,test [--lmdb-dir DIR]
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout, uninstalled


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-dir', required=True, help='folder holding the TSV/jsonl files')
    parser.add_argument('--splits', required=True, help='comma-separated, e.g. train,valid,test')
    parser.add_argument('--lmdb-dir', default=None, help='output folder (default DATA_DIR/lmdb)')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from cnclip_mm.datasets.lmdb_writer import build_lmdb
    splits = [s for s in args.splits.split(',') if s.strip()]
    counts = build_lmdb(args.data_dir, [s.strip() for s in splits], args.lmdb_dir,
                        show_progress=not args.no_progress)
    for split, c in counts.items():
        print(f'{split}: {c["num_samples"]} pairs, {c["num_images"]} images')
    return counts


if __name__ == '__main__':
    main(sys.argv[1:])
