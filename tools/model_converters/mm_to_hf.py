"""Export a model (any supported checkpoint, optionally with a config) as a Hugging Face ChineseCLIPModel
folder: config.json, model.safetensors, tokenizer files and preprocessor_config.json. ViT models only."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing



def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('checkpoint', help='checkpoint of any supported format')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--config', help='model config (default: inferred from the checkpoint)')
    parser.add_argument('--vocab-file', help='vocab.txt / tokenizer folder / hub name for the tokenizer files')
    args = parser.parse_args(argv)
    from cnclip_mm.models.builder import init_model
    from cnclip_mm.models.converters import export_hf
    model = init_model(args.config, args.checkpoint, vocab_file=args.vocab_file)
    export_hf(model, args.out_dir)
    print(f'saved {args.out_dir}')


if __name__ == '__main__':
    main()
