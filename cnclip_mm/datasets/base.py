"""Base of every dataset here: the ``on_bad_sample`` policy applied at load and fetch time."""
from typing import Optional

from mmengine.dataset import BaseDataset

from .bad_samples import BadSampleError, BadSampleLog


class BadSampleAwareDataset(BaseDataset):
    """A :class:`mmengine.dataset.BaseDataset` whose bad samples raise or are skipped and counted.

    Args:
        on_bad_sample: ``'error'`` (default) raises naming file, line or key and the problem;
            ``'skip'`` skips, counts, and the count and first examples are logged (after loading
            and, through ``BadSampleReportHook``, at the end of each epoch).
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self, on_bad_sample: str = 'error', **kwargs):
        self.bad_samples = BadSampleLog(on_bad_sample)
        self.num_skipped_at_load = 0
        self.load_examples = []
        self._skipped_indices = set()  # known bad items of this process, never re-drawn
        super().__init__(**kwargs)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        self.load_examples = self.bad_samples.examples
        self.num_skipped_at_load = self.bad_samples.report(f'{self.name} while loading')

    @property
    def name(self) -> str:
        split = getattr(self, 'split', None)
        return f'{type(self).__name__}({split})' if split else type(self).__name__

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Run the pipeline; with ``on_bad_sample='skip'`` a bad training item yields None.

        :class:`mmengine.dataset.BaseDataset` then fetches another random item (never a known
        bad one). In test mode every item is needed for the metrics, so a bad one always raises.
        """
        try:
            return self.pipeline(self.get_data_info(idx))
        except BadSampleError as err:
            if self.bad_samples.policy == 'error' or self.test_mode:
                raise BadSampleError(f'{self.name} item {idx}: {err}') from err
            self._skipped_indices.add(idx)
            self.bad_samples.record(str(err))
            return None

    def _rand_another(self) -> int:
        # mmengine re-draws a random item after a skip; never one already known bad, so each skip
        # the log counts is one visit of the sampler (or one first-time re-draw), not a re-draw repeat.
        while True:
            idx = super()._rand_another()
            if idx not in self._skipped_indices or len(self._skipped_indices) >= len(self):
                return idx
