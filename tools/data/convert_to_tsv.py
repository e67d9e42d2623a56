"""Convert an image folder + captions (jsonl {"image", "caption"} or csv image,caption) to the official TSV/jsonl.

    python tools/data/convert_to_tsv.py --img-dir my/images --captions my/captions.jsonl \\
        --out-dir data/mine --split train
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout, uninstalled


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--img-dir', required=True, help='folder the caption file paths are relative to')
    parser.add_argument('--captions', required=True, help='.jsonl or .csv caption file')
    parser.add_argument('--out-dir', required=True, help='where {split}_imgs.tsv/_texts.jsonl go')
    parser.add_argument('--split', default='train')
    parser.add_argument('--first-image-id', type=int, default=1)
    parser.add_argument('--first-text-id', type=int, default=1)
    parser.add_argument('--no-verify', action='store_true', help='skip checking that images decode')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from cnclip_mm.datasets.tsv_writer import convert_to_tsv
    counts = convert_to_tsv(args.img_dir, args.captions, args.out_dir, args.split,
                            args.first_image_id, args.first_text_id, verify=not args.no_verify,
                            show_progress=not args.no_progress)
    print(f'{args.split}: {counts["num_images"]} images, {counts["num_texts"]} texts -> {args.out_dir}')
    return counts


if __name__ == '__main__':
    main(sys.argv[1:])
