"""Convert an mmpretrain Chinese CLIP .pth to this project's checkpoint format.

Usage: python tools/model_converters/mmpretrain_to_mm.py SRC DST.pth
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from cnclip_mm.cli import convert_cli  # noqa: E402  (parses arguments before torch loads)


def main(argv=None) -> None:
    convert_cli('mmpretrain', __doc__, argv)


if __name__ == '__main__':
    main()
