"""Write the synthetic demo image-caption set (official TSV/jsonl layout + vocab.txt).

    python tools/data/make_demo_data.py [--root data/demo] [--seed 0]
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout, uninstalled


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='data/demo')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    from cnclip_mm.datasets.demo import make_demo_data
    root = make_demo_data(args.root, args.seed)
    print(f'demo data written to {root}')
    return root


if __name__ == '__main__':
    main(sys.argv[1:])
