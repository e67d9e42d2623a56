"""Keep the temperature in range after every optimizer step."""
from mmengine.hooks import Hook

from cnclip_mm.engine.runner.ddp import unwrap_model
from cnclip_mm.registry import HOOKS


@HOOKS.register_module()
class LogitScaleClampHook(Hook):
    """Call ``model.clamp_logit_scale()`` after each train iteration (official: ``[0, ln 100]``)."""

    priority = 'HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        unwrap_model(runner.model).clamp_logit_scale()
