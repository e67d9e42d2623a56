"""Captions cut to the context length: counted where they are tokenised, reported per epoch.

``TokenizeText`` runs in DataLoader workers, so its counts live in shared memory created in the main
process (one slot per process, as :class:`~cnclip_mm.datasets.bad_samples.BadSampleLog` does);
``TruncationReportHook`` reads them after each epoch, gathers every rank's to rank 0 and logs one line.
"""
import logging
import multiprocessing as mp
from typing import Iterator, List, Optional, Tuple

import torch.utils.data
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from cnclip_mm.registry import HOOKS

from .bad_samples import BadSampleLog


class TruncationLog:
    """How many captions a tokenising step saw and cut, with the first cut ones, across processes.

    Args:
        max_examples: how many truncated captions to keep for the report.
    """

    def __init__(self, max_examples: int = 3):
        self._cut = BadSampleLog('skip', max_examples)  # its shared per-process counts and examples
        self._seen = mp.RawArray('q', BadSampleLog._SLOTS)

    def __deepcopy__(self, memo):
        # Copies of a pipeline (dataset wrappers) count into the same memory.
        return self

    def record(self, truncated: bool, where: str = '') -> None:
        """Count one tokenised caption (and, when ``truncated``, keep ``where`` as an example)."""
        info = torch.utils.data.get_worker_info()
        self._seen[0 if info is None else 1 + info.id % (BadSampleLog._SLOTS - 1)] += 1
        if truncated:
            self._cut.record(where)

    @property
    def count(self) -> int:
        """Truncated captions since the last reset."""
        return self._cut.count

    @property
    def seen(self) -> int:
        """Tokenised captions since the last reset."""
        return int(sum(self._seen))

    @property
    def examples(self) -> List[str]:
        return self._cut.examples

    def reset(self) -> None:
        self._cut.reset()
        self._seen[:] = [0] * len(self._seen)

    def report(self, name: str, context_length: int, gather: bool = True) -> Tuple[int, int]:
        """Log (rank 0) how many captions were cut, then reset; returns ``(truncated, seen)`` over ranks.

        Args:
            name: what the line is about (dataset and moment).
            context_length: the length the captions were cut to, for the message.
            gather: a collective: every rank calls it at the same point and rank 0 logs the sums.
        """
        per_rank = [(self.count, self.seen, self.examples)]
        if gather and get_world_size() > 1:
            per_rank = all_gather_object(per_rank[0])
        cut, seen = sum(r[0] for r in per_rank), sum(r[1] for r in per_rank)
        if seen and (len(per_rank) == 1 or get_rank() == 0):
            if cut:
                ranks = '' if len(per_rank) == 1 else \
                    ' (' + ', '.join(f'rank {i}: {r[0]}' for i, r in enumerate(per_rank)) + ')'
                lines = [line for _, _, examples in per_rank for line in examples]
                print_log('\n  '.join([f'{name}: {cut} of {seen} caption(s) ({100 * cut / seen:.2f}%) longer '
                                       f'than the context length {context_length}, truncated{ranks}; '
                                       'first ones:', *lines]), logger='current', level=logging.WARNING)
            else:
                print_log(f'{name}: all {seen} caption(s) fit the context length {context_length}',
                          logger='current', level=logging.INFO)
        self.reset()
        return cut, seen


def iter_tokenize_steps(node, _seen: Optional[set] = None) -> Iterator:
    """Every step with a ``truncation`` log (``TokenizeText``) in a dataset, its wrappers and pipelines."""
    _seen = set() if _seen is None else _seen
    if node is None or id(node) in _seen:
        return
    _seen.add(id(node))
    if isinstance(getattr(node, 'truncation', None), TruncationLog):
        yield node
        return
    for attr in ('dataset', 'datasets', 'pipeline', 'transforms'):
        child = getattr(node, attr, None)
        for item in (child if isinstance(child, (list, tuple)) else [child]):
            if item is not None and not isinstance(item, (str, bytes, dict)):
                yield from iter_tokenize_steps(item, _seen)


@HOOKS.register_module()
class TruncationReportHook(Hook):
    """Log, per train epoch and per validation / test run, how many captions were cut to fit the context.

    A summed count over ranks (rank 0 logs it, with the first truncated captions of each rank) instead of
    silent truncation; raise ``tokenizer.context_length`` (up to the text tower's 512 positions) when it is
    high. Every rank runs the hook at the same point, as the collective needs.
    """

    priority = 'VERY_LOW'

    @staticmethod
    def _report(runner, loader_name: str, when: str) -> Tuple[int, int]:
        loader = getattr(runner, loader_name, None)
        total = [0, 0]
        for step in iter_tokenize_steps(getattr(loader, 'dataset', None)):
            cut, seen = step.truncation.report(f'{when}: {type(step).__name__}', step.context_length)
            total[0] += cut
            total[1] += seen
        return total[0], total[1]

    def after_train_epoch(self, runner) -> None:
        self._report(runner, 'train_dataloader', f'epoch {runner.epoch}')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if getattr(runner, '_val_loop', None) is not None and not isinstance(runner._val_loop, dict):
            self._report(runner, 'val_dataloader', 'validation')

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if getattr(runner, '_test_loop', None) is not None and not isinstance(runner._test_loop, dict):
            self._report(runner, 'test_dataloader', 'test')
