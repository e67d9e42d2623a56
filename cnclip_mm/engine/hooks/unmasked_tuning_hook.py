"""FLIP's unmasked tuning: the last epochs (or iterations) of a masked run see every patch token."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from cnclip_mm.engine.runner.ddp import unwrap_model
from cnclip_mm.registry import HOOKS


@HOOKS.register_module()
class UnmaskedTuningHook(Hook):
    """Set the image tower's ``mask_ratio`` to 0 for the last ``epochs`` epochs or ``iters`` iterations.

    FLIP trains with most patch tokens dropped and closes the gap to evaluation (which sees every
    token) with a short unmasked phase. The phase is a pure function of ``runner.epoch`` /
    ``runner.iter``, so a resumed run lands in the right one in :meth:`before_train`; the masked
    ratio is the one the model was built with (``model.image_encoder.mask_ratio`` in the config).

    Args:
        epochs: unmasked epochs at the end of an epoch-based run.
        iters: unmasked iterations at the end of the run (either loop type); give one of the two.
    """

    priority = 'VERY_HIGH'

    def __init__(self, epochs: Optional[int] = None, iters: Optional[int] = None) -> None:
        if (epochs is None) == (iters is None):
            raise ValueError('UnmaskedTuningHook: give exactly one of epochs and iters')
        count = epochs if epochs is not None else iters
        if count < 1:
            raise ValueError(f'UnmaskedTuningHook: epochs/iters must be >= 1, got {count}')
        self.epochs = epochs
        self.iters = iters
        self._masked_ratio: Optional[float] = None
        self._unmasked: Optional[bool] = None

    def _tower(self, runner):
        tower = unwrap_model(runner.model).image_encoder
        if not hasattr(tower, 'set_mask_ratio'):
            raise TypeError(f'UnmaskedTuningHook: the image tower {type(tower).__name__} has no patch masking '
                            '(only CLIPVisionTransformer has mask_ratio)')
        return tower

    def _apply(self, runner) -> None:
        if self.epochs is not None:
            unmasked = runner.epoch >= runner.max_epochs - self.epochs
        else:
            unmasked = runner.iter >= runner.max_iters - self.iters
        if unmasked == self._unmasked:
            return
        self._tower(runner).set_mask_ratio(0.0 if unmasked else self._masked_ratio)
        self._unmasked = unmasked
        if unmasked:
            print_log(f'UnmaskedTuningHook: patch masking off from epoch {runner.epoch}, iter {runner.iter}',
                      logger='current')

    def before_train(self, runner) -> None:
        tower = self._tower(runner)
        if self._masked_ratio is None:
            self._masked_ratio = tower.mask_ratio
        if self._masked_ratio == 0:
            raise ValueError('UnmaskedTuningHook: the image tower is built with mask_ratio=0; set '
                             'model.image_encoder.mask_ratio (e.g. 0.5) for the masked phase')
        self._unmasked = None  # replay from scratch: also right after a resume
        self._apply(runner)

    def before_train_epoch(self, runner) -> None:
        self._apply(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._apply(runner)
