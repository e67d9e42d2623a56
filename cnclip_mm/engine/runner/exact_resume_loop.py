"""Epoch-based training loop that resumes an interrupted epoch at its next unseen batch, skipping at the sampler."""
import torch
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import BatchSampler, DataLoader

from cnclip_mm.cpu.mode import fetched_outside
from cnclip_mm.datasets.sample_seeds import SeededIndexSampler, SeededSamples
from cnclip_mm.registry import LOOPS


def seeded_loader(loader: DataLoader, seed: int) -> DataLoader:
    """``loader`` rebuilt over :class:`SeededSamples` with a :class:`SeededIndexSampler` (same settings).

    Args:
        loader: A map-style loader with a plain batch size (no custom ``batch_sampler``).
        seed: Base of the samples' seeds (the run's seed).

    Returns:
        The new loader: each sample augmented from ``(seed, epoch, index)``, able to skip an epoch's start.
    """
    if type(loader.batch_sampler) is not BatchSampler or loader.batch_sampler.sampler is not loader.sampler:
        raise TypeError(f'train_dataloader: a custom batch_sampler ({type(loader.batch_sampler).__name__}) is not '
                        'supported by the exact-resume loop; give sampler and batch_size instead')
    return DataLoader(
        SeededSamples(loader.dataset), batch_size=loader.batch_size, drop_last=loader.drop_last,
        sampler=SeededIndexSampler(loader.sampler, seed), num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator, prefetch_factor=loader.prefetch_factor if loader.num_workers else None,
        persistent_workers=loader.persistent_workers, pin_memory_device=loader.pin_memory_device,
        in_order=loader.in_order)


@LOOPS.register_module()
class ExactResumeEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that continues mid-epoch exactly where an iteration checkpoint stopped.

    mmengine restarts a resumed epoch at its first batch while keeping the iteration counter, so a run
    resumed from an iteration checkpoint trains some batches twice and shifts every schedule. Here the
    sampler skips the batches already trained on (nothing is loaded or decoded for them), and the next
    batch, its augmentation and dropout equal the uninterrupted run's because:

    * every sample is augmented from its own seed ``(run seed, epoch, index)`` (:func:`seeded_loader`),
      whatever the worker that loads it, the number of workers or their persistence;
    * the main process's RNG states come back from the checkpoint (``RNGStateHook``), and starting an
      epoch's iterator (which draws the workers' base seed) never moves them.

    ``CLIPRunner`` uses this loop for every epoch-based config.
    """

    def __init__(self, runner, dataloader, *args, **kwargs) -> None:
        super().__init__(runner, dataloader, *args, **kwargs)
        self.dataloader = seeded_loader(self.dataloader, runner.seed)

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = max(self._iter - self._epoch * len(self.dataloader), 0)
        if done:
            self.runner.logger.info(f'resumed mid-epoch: the sampler skips the {done} batches of epoch '
                                    f'{self._epoch} trained before the checkpoint')
        self.dataloader.sampler.skip(done * self.dataloader.batch_size)
        with torch.random.fork_rng(devices=[]):
            batches = iter(self.dataloader)
        for idx, data_batch in enumerate(fetched_outside(batches), start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
