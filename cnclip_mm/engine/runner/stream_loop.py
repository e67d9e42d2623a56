"""Iteration-based training over a streamed (iterable) dataset with data epochs and exact resume."""
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.dist import get_comm_device, get_world_size
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from cnclip_mm.registry import LOOPS


@LOOPS.register_module()
class StreamTrainLoop(IterBasedTrainLoop):
    """:class:`IterBasedTrainLoop` for ``WebDatasetImageText`` (or any dataset with ``set_position``).

    ``runner.epoch`` counts data epochs. An epoch ends after the dataset's ``epoch_length``
    iterations (resampled mode), or, in non-resampled mode, at the first iteration where some rank
    has no batch left (one tiny all-reduce per iteration keeps ranks in step). The epoch and the
    batches done in it are kept in the message hub, which checkpoints save; a resume hands them to
    the dataset, whose workers skip exactly those batches without decoding them instead of
    mmengine's replay of ``iter`` batches through the whole pipeline.

    Args:
        runner: The runner.
        dataloader: Dataloader (config) of the streamed dataset (``sampler=None``).
        max_iters: Total training iterations.
        **kwargs: ``val_begin``, ``val_interval``, ``dynamic_intervals`` as in mmengine.
    """

    def __init__(self, runner, dataloader, max_iters: int, **kwargs) -> None:
        super().__init__(runner, dataloader, max_iters, **kwargs)
        self.dataloader_iterator = None  # started in run(), once a resume has set the position
        self.dataset.set_position(0, 0, self.dataloader.batch_size)  # len() in resampled mode needs it
        self._batches_done = 0

    @property
    def dataset(self):
        return self.dataloader.dataset

    def _start_epoch(self, epoch: int, batches_done: int) -> None:
        self._epoch, self._batches_done = epoch, batches_done
        self.dataset.set_position(epoch, batches_done, self.dataloader.batch_size)
        with torch.random.fork_rng(devices=[]):  # the workers' base seed draw would shift the
            self.dataloader_iterator = iter(self.dataloader)  # main RNG, so a resume would differ

    def _all_have_batch(self, batch: Optional[dict]) -> bool:
        have = batch is not None
        if getattr(self.dataset, 'resampled', False) or get_world_size() == 1:
            return have
        flag = torch.tensor([int(have)], device=get_comm_device())  # NCCL reduces CUDA tensors only
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def next_batch(self) -> dict:
        """The next batch of the stream; starts the next data epoch when this one is over."""
        if self.dataloader_iterator is None:
            hub = self.runner.message_hub
            resumed = self._iter > 0  # a resume (not reset_data_offset) restored the stream position
            self._start_epoch(hub.get_info('stream_epoch', 0) if resumed else 0,
                              hub.get_info('stream_batches_done', 0) if resumed else 0)
        for fresh in (False, True):
            length = getattr(self.dataset, 'epoch_length', None)
            batch = None
            if not length or self._batches_done < length:
                batch = next(self.dataloader_iterator, None)
            if self._all_have_batch(batch):
                self._batches_done += 1
                self.runner.message_hub.update_info('stream_epoch', self._epoch)
                self.runner.message_hub.update_info('stream_batches_done', self._batches_done)
                return batch
            if fresh:
                raise RuntimeError(f'{getattr(self.dataset, "name", "dataset")}: epoch {self._epoch} '
                                   'yielded no batch on some rank (too few shards or samples?)')
            self._end_epoch()
        raise AssertionError('unreachable')

    def _end_epoch(self) -> None:
        print_log(f'data epoch {self._epoch} done after {self._batches_done} batches', logger='current')
        bad = getattr(self.dataset, 'bad_samples', None)
        if bad is not None:
            bad.report(f'{self.dataset.name} epoch {self._epoch}', gather=True)
        self._start_epoch(self._epoch + 1, 0)

    def run(self) -> torch.nn.Module:
        """mmengine's iteration loop, drawing batches from :meth:`next_batch` (no replay on resume)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(self.next_batch())
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
