"""End-of-epoch report of skipped bad samples (``on_bad_sample='skip'``)."""
from typing import Iterator, Optional

from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.hooks import Hook

from cnclip_mm.registry import HOOKS

from .base import BadSampleAwareDataset
from .sample_seeds import SeededSamples
from .webdataset_shards import WebDatasetImageText


def iter_bad_sample_datasets(dataset) -> Iterator[BadSampleAwareDataset | WebDatasetImageText]:
    """The datasets with a bad-sample log inside (possibly wrapped) ``dataset``."""
    if isinstance(dataset, (BadSampleAwareDataset, WebDatasetImageText)):
        yield dataset
    elif isinstance(dataset, ConcatDataset):
        for sub in dataset.datasets:
            yield from iter_bad_sample_datasets(sub)
    elif isinstance(dataset, (RepeatDataset, SeededSamples)):
        yield from iter_bad_sample_datasets(dataset.dataset)


@HOOKS.register_module()
class BadSampleReportHook(Hook):
    """Log how many training samples were skipped in the epoch, with the first examples.

    Workers record skips in shared memory (:class:`BadSampleLog`); this hook reads and resets the
    counts in the main process after each train epoch and after validation/test runs. Every rank
    runs the hook at the same point, so the counts and examples of all ranks are gathered and rank 0
    logs them (mmengine's logger prints only errors on the other ranks).
    """

    priority = 'VERY_LOW'

    @staticmethod
    def _report(runner, loader_name: str, when: str) -> int:
        loader = getattr(runner, loader_name, None)
        dataset = getattr(loader, 'dataset', None)
        total = 0
        for ds in iter_bad_sample_datasets(dataset):
            total += ds.bad_samples.report(f'{ds.name} {when}', gather=True)
        return total

    def after_train_epoch(self, runner) -> None:
        self._report(runner, 'train_dataloader', f'epoch {runner.epoch}')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if getattr(runner, '_val_loop', None) is not None and not isinstance(runner._val_loop, dict):
            self._report(runner, 'val_dataloader', 'validation')

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if getattr(runner, '_test_loop', None) is not None and not isinstance(runner._test_loop, dict):
            self._report(runner, 'test_dataloader', 'test')
