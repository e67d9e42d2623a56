"""Argument-parsing helpers for tools/*.py that import nothing heavy, so ``--help`` answers at once."""
import argparse


class DictAction(argparse.Action):
    """mmengine's ``DictAction`` (``--cfg-options k=v ...``), imported only when the option is given."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction as MMEngineDictAction
        MMEngineDictAction(self.option_strings, self.dest, nargs=self.nargs)(parser, namespace, values,
                                                                              option_string)


def convert_cli(expect: str, description: str, argv=None) -> str:
    """Command line of the ``tools/model_converters/*_to_mm.py`` scripts: ``SRC DST``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=f'the {expect} checkpoint (file, or folder for Hugging Face)')
    parser.add_argument('dst', help='output .pth (state_dict + meta with the model config)')
    args = parser.parse_args(argv)
    from cnclip_mm.models.converters.convert import convert_checkpoint
    convert_checkpoint(args.src, args.dst, expect=expect)
    print(f'saved {args.dst}')
    return args.dst
