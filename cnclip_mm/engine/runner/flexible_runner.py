"""MMEngine's FlexibleRunner (FSDP / DeepSpeed strategies) with what CLIPRunner adds."""
from mmengine.runner import FlexibleRunner

from cnclip_mm.registry import RUNNERS

from .clip_runner import CLIPRunnerMixin
from .dist_env import init_cpu_process_group


@RUNNERS.register_module()
class CLIPFlexibleRunner(CLIPRunnerMixin, FlexibleRunner):
    """:class:`mmengine.runner.FlexibleRunner` + :class:`CLIPRunnerMixin` (``reset_optimizer``,
    ``reset_data_offset``, ``last_checkpoint`` pointers), selected by ``--strategy fsdp``.

    Tower locking, the stage switch, the gathered contrastive loss and feature-cache accumulation
    work through ``CLIPFullyShardedDataParallel`` (configs/_base_/strategies/fsdp.py).
    """

    def __init__(self, *args, launcher=None, env_cfg=None, **kwargs) -> None:
        init_cpu_process_group(launcher, env_cfg)  # before the strategy tries CUDA
        super().__init__(*args, launcher=launcher, env_cfg=env_cfg, **kwargs)
        # Build the model now, right after seeding, as Runner does (FlexibleRunner would build it in
        # train(), after other random draws): the same seed then gives the same initial weights.
        self.model = self.strategy.build_model(self.model)
        if self.cfg.get('compile'):
            raise ValueError('compile is not supported with the FlexibleRunner strategies (FSDP, '
                             'DeepSpeed) here: train with the default DDP runner to use --compile')
