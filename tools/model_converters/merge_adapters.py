"""Fold LoRA adapters into the base weights and write a plain model in this project's, the official or the
Hugging Face format (ONNX export, the converters and every loader then treat it as any other checkpoint).

    python tools/model_converters/merge_adapters.py work_dirs/lora/epoch_3.pth --out merged.pth
    python tools/model_converters/merge_adapters.py ADAPTERS.pth --format official --out merged.pt
    python tools/model_converters/merge_adapters.py ADAPTERS.pth --format hf --out merged_hf/
    python tools/model_converters/merge_adapters.py ADAPTERS.pth --base clip_cn_vit-b-16.pt --out merged.pth

ADAPTERS is a checkpoint of a run with ``model.adapters``: adapters-only (``AdapterCheckpointHook``, the
base read from the file its meta names, or ``--base``) or full.
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(
    0, str(Path(__file__).resolve().parents[2])
)  # run from a checkout without installing

# The formats of cnclip_mm.models.adapters.merge.save_merged, named here so --help needs no torch / peft.
FORMATS = ('mm', 'official', 'hf')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Merge LoRA adapters into the base weights')
    parser.add_argument(
        'checkpoint', help='checkpoint of a run with model.adapters (adapters-only or full)'
    )
    parser.add_argument(
        '--out', required=True, help='output .pth / .pt file, or folder for --format hf'
    )
    parser.add_argument(
        '--format',
        choices=FORMATS,
        default='mm',
        help="mm: this project's .pth; official: OFA-Sys .pt; hf: ChineseCLIPModel folder",
    )
    parser.add_argument(
        '--base',
        help='base weights of an adapters-only checkpoint (default: the file its meta names)',
    )
    parser.add_argument(
        '--config', help='config of the run (default: the model config in the checkpoint)'
    )
    parser.add_argument(
        '--vocab-file', help='vocab.txt / tokenizer folder (tokenizer files of --format hf)'
    )
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    from cnclip_mm.models.adapters.merge import load_adapted_model, save_merged

    init_default_scope('cnclip_mm')
    model = load_adapted_model(
        args.checkpoint, base=args.base, config=args.config, vocab_file=args.vocab_file
    )
    out = save_merged(model, args.out, args.format)
    print(f'saved {out} ({args.format} format, adapters merged)')
    return out


if __name__ == '__main__':
    main()
