"""Runner with the official ``--reset-optimizer`` / ``--reset-data-offset`` resume options."""
import os.path as osp

from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from cnclip_mm.registry import RUNNERS

from .dist_env import init_cpu_process_group


class CLIPRunnerMixin:
    """What :class:`CLIPRunner` adds to mmengine's Runner, shared with ``CLIPFlexibleRunner``: two
    extra config keys, ``last_checkpoint`` pointers, foreign checkpoints, compiled towers.

    ``reset_optimizer=True``: a resume restores weights, counters and schedules but not the optimizer
    state. ``reset_data_offset=True``: a resume restarts at epoch 0 / iteration 0 with fresh
    parameter schedules (the optimizer state is still restored unless ``reset_optimizer``).
    Both together equal ``load_from`` (weights only), which is how stage 2 starts from stage 1.

    ``load_from`` may also name a work dir's ``last_checkpoint`` file (written by ``CheckpointHook``):
    the checkpoint it points to is loaded, so stage-2 configs need not know stage 1's file names.
    """

    reset_optimizer = False
    reset_data_offset = False

    def setup_env(self, env_cfg: dict) -> None:
        init_cpu_process_group(self.launcher, env_cfg)
        super().setup_env(env_cfg)

    def _maybe_compile(self, target: str) -> None:
        # ``compile`` compiles the towers in place instead of mmengine's whole train_step (why: compile.py).
        from .compile import compile_towers
        compile_towers(self.model.module if is_model_wrapper(self.model) else self.model, self.cfg.get('compile'))

    @classmethod
    def from_cfg(cls, cfg) -> 'CLIPRunner':
        runner = super().from_cfg(cfg)
        runner.reset_optimizer = bool(cfg.get('reset_optimizer', False))
        runner.reset_data_offset = bool(cfg.get('reset_data_offset', False))
        return runner

    def load_checkpoint(self, filename: str, *args, **kwargs):
        """Load weights; a foreign checkpoint (official, HF, mmpretrain) is converted and loaded strictly.

        mmengine's own loader neither renames keys nor checks them (``strict=False``), so an official
        ``.pt`` given as ``load_from`` would load nothing and training would start from random weights.
        """
        filename = resolve_checkpoint(filename)
        from cnclip_mm.models.converters import (
            is_own_checkpoint,
            load_state_dict_any,
            load_state_dict_into,
        )
        if is_own_checkpoint(filename):  # keys peeked memory-mapped: mmengine reads the file once
            return super().load_checkpoint(filename, *args, **kwargs)
        state_dict, fmt, _ = load_state_dict_any(filename)
        if fmt == 'mm':  # an own checkpoint in torch's legacy (non-zip) format
            return super().load_checkpoint(filename, *args, **kwargs)
        if self._resuming:
            raise ValueError(f'cannot resume from {filename}: it is a {fmt}-format checkpoint without the '
                             'optimizer and loop state of a cnclip-mm run; use load_from (weights only)')
        model = self.model.module if is_model_wrapper(self.model) else self.model
        load_state_dict_into(model, state_dict, strict=True, source=f'{filename} ({fmt} format)')
        self.logger.info(f'load_from: {filename} converted from the {fmt} format and loaded strictly')
        return dict(state_dict=state_dict)

    _resuming = False

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, map_location='default') -> None:
        optimizer = self.optim_wrapper.optimizer
        # The fresh schedules set each group's lr at build time; keep those hyper-parameters when the
        # data offset is reset, else the restored optimizer's final lr would be scheduled again.
        fresh_groups = [{k: v for k, v in g.items() if k != 'params'} for g in optimizer.param_groups]
        self._resuming = True
        try:
            # The optimizer is always restored, so its lr matches the restored schedules; with
            # reset_optimizer only its state (moments) is dropped below.
            super().resume(resolve_checkpoint(filename), resume_optimizer=resume_optimizer,
                           resume_param_scheduler=resume_param_scheduler and not self.reset_data_offset,
                           map_location=map_location)
        finally:
            self._resuming = False
        if self.reset_optimizer:
            optimizer.state.clear()
            self.logger.info('reset_optimizer: optimizer state (moments) not restored')
        if self.reset_data_offset:
            for group, fresh in zip(optimizer.param_groups, fresh_groups):
                group.update(fresh)
            self.train_loop._epoch = 0
            self.train_loop._iter = 0
            self.logger.info('reset_data_offset: training restarts at epoch 0, iteration 0')


@RUNNERS.register_module()
class CLIPRunner(CLIPRunnerMixin, Runner):
    """:class:`mmengine.runner.Runner` reading two extra config keys (see :class:`CLIPRunnerMixin`).
    """


def resolve_checkpoint(filename: str) -> str:
    """Follow a ``last_checkpoint`` pointer file to the checkpoint it names."""
    if osp.basename(filename) != 'last_checkpoint':
        return filename
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} does not exist: has the previous stage been trained into '
                                f'{osp.dirname(filename)}?')
    with open(filename) as f:
        target = f.read().strip()
    if not target:
        raise ValueError(f'{filename} is empty: expected the path of a checkpoint')
    beside = osp.join(osp.dirname(filename), osp.basename(target))
    if not osp.exists(target) and osp.exists(beside):  # the work dir was moved or copied
        target = beside
    return target
