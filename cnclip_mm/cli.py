"""Argument-parsing helpers for tools/*.py that import nothing heavy, so ``--help`` answers at once."""
import argparse


class DictAction(argparse.Action):
    """mmengine's ``DictAction`` (``--cfg-options k=v ...``), imported only when the option is given."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction as MMEngineDictAction
        MMEngineDictAction(self.option_strings, self.dest, nargs=self.nargs)(parser, namespace, values,
                                                                              option_string)
