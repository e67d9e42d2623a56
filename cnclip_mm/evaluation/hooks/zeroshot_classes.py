"""Builds the zero-shot classifier (class embeddings) before each evaluation and drops it after."""
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from cnclip_mm.registry import HOOKS
from cnclip_mm.utils.text_checks import describe_class_name_problems

from ..templates import load_templates, official_templates, read_lines


def _dataset_classes(dataloader) -> Optional[List[str]]:
    dataset = getattr(dataloader, 'dataset', None)
    metainfo = getattr(dataset, 'metainfo', None) or {}
    classes = metainfo.get('classes')
    return list(classes) if classes else None


def _dataset_name(dataloader) -> str:
    """The ELEVATER-style name of the evaluated set: the last folder of its ``data_root``."""
    root = getattr(getattr(dataloader, 'dataset', None), 'data_root', '') or ''
    return osp.basename(osp.normpath(root)) if root else ''


@HOOKS.register_module()
class ZeroShotClassesHook(Hook):
    """Calls ``model.set_zeroshot_classes(class_names, templates)`` once before every validation /
    test epoch (the text tower may have changed since the last one) and ``clear_zeroshot_classes()``
    after it, so the model writes ``pred_score`` for ``ZeroShotAccuracy`` only while evaluating.

    Args:
        classes: class names (a list or a text file, one name per line); default: the evaluation
            dataset's ``metainfo['classes']``.
        templates: ``'official'`` (default: the set the official ``zeroshot_evaluation.py`` picks for the
            dataset, by the name of its ``data_root`` folder; ``'openai'``, 183 prompts, for CIFAR-100 and most
            ELEVATER sets), a built-in set (see ``cnclip_mm.evaluation.templates``), a text file with one
            ``{}`` template per line, or a list.
        batch_size: prompts encoded per forward pass.

    Class names that tokenise to the same ids, or that are mostly ``[UNK]``, are warned about once.
    """

    priority = 'NORMAL'

    def __init__(self, classes: Union[str, Sequence[str], None] = None,
                 templates: Union[str, Sequence[str], None] = 'official', batch_size: int = 256) -> None:
        if isinstance(classes, str):
            classes = read_lines(classes, 'class-name')
        self.classes = list(classes) if classes is not None else None
        self.official = templates in (None, 'official')
        self.templates = None if self.official else load_templates(templates)
        self.batch_size = batch_size
        self._checked = False

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _set(self, runner, dataloader) -> None:
        classes = self.classes or _dataset_classes(dataloader)
        if not classes:
            raise ValueError('ZeroShotClassesHook: no class names; give `classes` in the hook config or '
                             "use a dataset whose metainfo has 'classes'")
        model = self._model(runner)
        if not hasattr(model, 'set_zeroshot_classes'):
            raise TypeError(f'ZeroShotClassesHook: {type(model).__name__} has no set_zeroshot_classes()')
        if self.official:
            name = official_templates(_dataset_name(dataloader))
            templates = load_templates(name)
            source = f"the official '{name}' set"
        else:
            templates, source = self.templates, 'the configured set'
        if not self._checked and getattr(model, 'tokenizer', None) is not None:
            self._checked = True
            for message in describe_class_name_problems(model.tokenizer, classes):
                runner.logger.warning(f'ZeroShotClassesHook: {message}')
        model.set_zeroshot_classes(classes, templates, batch_size=self.batch_size)
        runner.logger.info(f'zero-shot classifier: {len(classes)} classes x {len(templates)} '
                           f'prompt templates ({source})')

    def _clear(self, runner) -> None:
        model = self._model(runner)
        if hasattr(model, 'clear_zeroshot_classes'):
            model.clear_zeroshot_classes()

    def before_val_epoch(self, runner) -> None:
        self._set(runner, runner.val_loop.dataloader)

    def before_test_epoch(self, runner) -> None:
        self._set(runner, runner.test_loop.dataloader)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._clear(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._clear(runner)
