"""Builds the zero-shot classifier (class embeddings) before each evaluation and drops it after."""
from typing import List, Optional, Sequence, Union

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from cnclip_mm.registry import HOOKS

from ..templates import load_templates, read_lines


def _dataset_classes(dataloader) -> Optional[List[str]]:
    dataset = getattr(dataloader, 'dataset', None)
    metainfo = getattr(dataset, 'metainfo', None) or {}
    classes = metainfo.get('classes')
    return list(classes) if classes else None


@HOOKS.register_module()
class ZeroShotClassesHook(Hook):
    """Calls ``model.set_zeroshot_classes(class_names, templates)`` once before every validation /
    test epoch (the text tower may have changed since the last one) and ``clear_zeroshot_classes()``
    after it, so the model writes ``pred_score`` for ``ZeroShotAccuracy`` only while evaluating.

    Args:
        classes: class names (a list or a text file, one name per line); default: the evaluation
            dataset's ``metainfo['classes']``.
        templates: a built-in set (``'imagenet'``, ``'cifar100'``), a text file with one ``{}``
            template per line, or a list; default ``'imagenet'``.
        batch_size: prompts encoded per forward pass.
    """

    priority = 'NORMAL'

    def __init__(self, classes: Union[str, Sequence[str], None] = None,
                 templates: Union[str, Sequence[str], None] = None, batch_size: int = 256) -> None:
        if isinstance(classes, str):
            classes = read_lines(classes, 'class-name')
        self.classes = list(classes) if classes is not None else None
        self.templates = load_templates(templates)
        self.batch_size = batch_size

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
        model.set_zeroshot_classes(classes, self.templates, batch_size=self.batch_size)
        runner.logger.info(f'zero-shot classifier: {len(classes)} classes x {len(self.templates)} '
                           'prompt templates')

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
