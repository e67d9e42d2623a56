"""Stage switching: lock the image (and optionally text) tower, unlock it later in the same run."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from cnclip_mm.engine.runner.ddp import rewrap_ddp, unwrap_model
from cnclip_mm.registry import HOOKS


@HOOKS.register_module()
class TowerLockHook(Hook):
    """Lock towers for stage 1 and unlock them at ``unlock_epoch`` / ``unlock_iter`` (stage 2).

    The stage is a pure function of ``runner.epoch`` / ``runner.iter``, so a resumed run lands in
    the right stage in :meth:`before_train`. The optimizer must hold every parameter (see
    ``CLIPOptimWrapperConstructor``) so unlocked ones train. A DDP wrapper is rebuilt at each switch
    (unless it has ``find_unused_parameters=True``) because DDP fixes its parameter set at wrap time.

    Args:
        lock_image: lock the image tower while in stage 1.
        image_unlocked_groups: last N layer groups of the image tower left trainable.
        freeze_bn_stats: keep locked BatchNorm in eval mode (running stats frozen).
        lock_text: also lock the text tower while in stage 1.
        text_unlocked_layers: last N text layers left trainable when ``lock_text``.
        unlock_epoch: first epoch (0-based) of stage 2; None: never by epoch.
        unlock_iter: first iteration (0-based) of stage 2; None: never by iteration.
    """

    priority = 'VERY_HIGH'

    def __init__(self, lock_image: bool = True, image_unlocked_groups: int = 0,
                 freeze_bn_stats: bool = True, lock_text: bool = False,
                 text_unlocked_layers: int = 0, unlock_epoch: Optional[int] = None,
                 unlock_iter: Optional[int] = None) -> None:
        if unlock_epoch is not None and unlock_iter is not None:
            raise ValueError('TowerLockHook: give unlock_epoch or unlock_iter, not both')
        if not (lock_image or lock_text):
            raise ValueError('TowerLockHook: nothing to lock (lock_image and lock_text are both False)')
        self.lock_image = lock_image
        self.image_unlocked_groups = image_unlocked_groups
        self.freeze_bn_stats = freeze_bn_stats
        self.lock_text = lock_text
        self.text_unlocked_layers = text_unlocked_layers
        self.unlock_epoch = unlock_epoch
        self.unlock_iter = unlock_iter
        self._locked: Optional[bool] = None

    def _should_lock(self, runner) -> bool:
        if self.unlock_epoch is not None:
            return runner.epoch < self.unlock_epoch
        if self.unlock_iter is not None:
            return runner.iter < self.unlock_iter
        return True

    def _apply(self, runner) -> None:
        locked = self._should_lock(runner)
        if locked == self._locked:
            return
        model = unwrap_model(runner.model)
        if locked:
            if self.lock_image:
                model.lock_image_tower(unlocked_groups=self.image_unlocked_groups,
                                       freeze_bn_stats=self.freeze_bn_stats)
            if self.lock_text:
                model.lock_text_tower(unlocked_layers=self.text_unlocked_layers)
        else:
            if self.lock_image:
                model.unlock_image_tower()
            if self.lock_text:
                model.unlock_text_tower()
        self._locked = locked
        runner.model = rewrap_ddp(runner.model)
        towers = ' and '.join(n for n, on in (('image', self.lock_image), ('text', self.lock_text)) if on)
        print_log(f'TowerLockHook: {towers} tower {"locked" if locked else "unlocked"} at epoch '
                  f'{runner.epoch}, iter {runner.iter}', logger='current')

    def before_train(self, runner) -> None:
        self._locked = None  # replay from scratch: also right after a resume
        self._apply(runner)

    def before_train_epoch(self, runner) -> None:
        self._apply(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._apply(runner)
