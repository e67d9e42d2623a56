"""Walk the datasets of a config: item counts, broken items, caption-length statistics.

    python tools/data/check_dataset.py configs/_base_/datasets/demo.py [--limit 1000]

Bad samples are skipped (not fatal) while checking so that all of them are listed.
Exit status 1 when anything is broken.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout, uninstalled

from cnclip_mm.cli import DictAction  # noqa: E402  (arguments are parsed before torch and mmengine load)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--loaders', help='which dataloaders to check, comma separated (default: train, val '
                        'and test)')
    parser.add_argument('--limit', type=int, default=None, help='check only the first N items of each')
    parser.add_argument('--show-broken', type=int, default=20, help='how many broken items to print')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from cnclip_mm.datasets.checker import LOADERS, UNK_WARN, check_dataset
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'cnclip_mm'))
    reports = check_dataset(cfg, args.loaders.split(',') if args.loaders else list(LOADERS), args.limit, not args.no_progress)
    bad = 0
    for name, r in reports.items():
        print(f'== {name}: {r["dataset_items"]} items ({r["images"]} with image, {r["texts"]} with text '
              f'among the {r["items"]} checked)')
        print(f'   skipped while loading: {r["skipped_at_load"]}; broken items: {len(r["broken"])}; '
              f'captions truncated to the context: {r["truncated"]}')
        print(f'   caption chars: {r["caption_chars"]}; caption tokens (with [CLS]/[SEP]): {r["caption_tokens"]}')
        print(f'   [UNK] share of caption tokens: {r["unk_share"]:.2%}')
        if r['unk_share'] > UNK_WARN:
            print(f'   WARNING: {r["unk_share"]:.0%} of the caption tokens are [UNK]: is the tokenizer vocab right '
                  f'(tokenizer.vocab_file)? e.g. {r["unk_examples"]}')
        for line in r['load_examples']:
            print(f'   load: {line}')
        for idx, msg in r['broken'][:args.show_broken]:
            print(f'   item {idx}: {msg}')
        bad += r['skipped_at_load'] + len(r['broken'])
    if bad and __name__ == '__main__':
        sys.exit(1)
    return reports


if __name__ == '__main__':
    main(sys.argv[1:])
