"""Epoch-based training loop that resumes an interrupted epoch at its next unseen batch."""
from mmengine.runner import EpochBasedTrainLoop

from cnclip_mm.engine.hooks.rng_state_hook import get_rng_states, set_rng_states
from cnclip_mm.registry import LOOPS


@LOOPS.register_module()
class ExactResumeEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that continues mid-epoch exactly where an iteration checkpoint stopped.

    mmengine restarts a resumed epoch at its first batch while keeping the iteration counter, so a run
    resumed from an iteration checkpoint trains some batches twice and shifts every schedule. Here the
    batches already trained on are drawn again from a fresh data loader (same sampler order for the epoch;
    DataLoader workers advance their random streams as before) and discarded, then the main process's
    RNG states are put back: the next batch, its augmentation and dropout equal the uninterrupted run's.
    ``CLIPRunner`` uses this loop for every epoch-based config.
    """

    def run_epoch(self) -> None:
        done = self._iter - self._epoch * len(self.dataloader)
        if done <= 0:
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        batches = iter(())  # an iteration checkpoint at the epoch's last batch: only its end is left
        if done < len(self.dataloader):
            states = get_rng_states()  # as the checkpoint left them (RNGStateHook)
            batches = iter(self.dataloader)
            for _ in range(done):
                next(batches)
            set_rng_states(states)
        self.runner.logger.info(f'resumed mid-epoch: skipped the {done} batches of epoch {self._epoch} '
                                'trained before the checkpoint')
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
