"""Runner with the official ``--reset-optimizer`` / ``--reset-data-offset`` resume options."""
import os.path as osp
from contextlib import contextmanager
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from cnclip_mm.cpu import cpu_speed, resolve_auto_workers
from cnclip_mm.cpu.speed import check_choice
from cnclip_mm.registry import RUNNERS

from .atomic_io import commit_file
from .dist_env import init_cpu_process_group

# Timestamps of the runners made in this process. mmengine names a runner's logger, message hub and
# visualizer after its timestamp (to the second) and reuses an existing instance of that name, so a
# second runner made in the same second shared the first's: its log went to the first run's file, and
# CheckpointHook's list of kept checkpoints carried over and deleted the new run's first checkpoint.
_TIMESTAMPS = set()


def unique_timestamp(timestamp: str) -> str:
    """``timestamp``, or ``timestamp_2``, ``_3``, ... when a runner of this process already has it."""
    name, n = timestamp, 1
    while name in _TIMESTAMPS:
        n += 1
        name = f'{timestamp}_{n}'
    _TIMESTAMPS.add(name)
    return name


class CLIPRunnerMixin:
    """What :class:`CLIPRunner` adds to mmengine's Runner, shared with ``CLIPFlexibleRunner``: its
    config keys, ``last_checkpoint`` pointers, foreign checkpoints, compiled towers,
    ``num_workers='auto'`` dataloaders.

    ``reset_optimizer=True``: a resume restores weights, counters and schedules but not the optimizer
    state. ``reset_data_offset=True``: a resume restarts at epoch 0 / iteration 0 with fresh
    parameter schedules (the optimizer state is still restored unless ``reset_optimizer``).
    Both together equal ``load_from`` (weights only), which is how stage 2 starts from stage 1.
    ``load_strict=False``: ``load_from`` loads the matching weights only (default: mismatches raise).

    ``load_from`` may also name a work dir's ``last_checkpoint`` file (written by ``CheckpointHook``):
    the checkpoint it points to is loaded, so stage-2 configs need not know stage 1's file names.

    ``cpu_speed`` (``'auto'``, default; True / False): ``train`` / ``val`` / ``test`` run inside
    :func:`cnclip_mm.cpu.cpu_speed` for the model's device (on for a CPU under ``'auto'``), with the
    thread count ``env_cfg.num_threads`` asks for; the log says what is on and why, and every global
    setting is put back when they return.
    """

    reset_optimizer = False
    reset_data_offset = False
    load_strict = True
    cpu_speed = 'auto'

    def setup_env(self, env_cfg: dict) -> None:
        init_cpu_process_group(self.launcher, env_cfg)
        super().setup_env(env_cfg)
        self._timestamp = unique_timestamp(self._timestamp)  # names the log dir and instances next

    def _maybe_compile(self, target: str) -> None:
        # ``compile`` compiles the towers in place instead of mmengine's whole train_step (why: compile.py).
        from .compile import compile_towers
        compile_towers(self.model.module if is_model_wrapper(self.model) else self.model, self.cfg.get('compile'))

    @classmethod
    def from_cfg(cls, cfg) -> 'CLIPRunner':
        from cnclip_mm.utils import share_tokenizer
        runner = super().from_cfg(share_tokenizer(cfg))
        runner.reset_optimizer = bool(cfg.get('reset_optimizer', False))
        runner.reset_data_offset = bool(cfg.get('reset_data_offset', False))
        runner.load_strict = bool(cfg.get('load_strict', True))
        runner.cpu_speed = cfg.get('cpu_speed', 'auto')
        check_choice(runner.cpu_speed, 'config key cpu_speed')
        return runner

    @contextmanager
    def _cpu_speed(self):
        """:func:`cnclip_mm.cpu.cpu_speed` for the model's device, logged and undone on exit."""
        model = self.model.module if is_model_wrapper(self.model) else self.model
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        threads = (self.cfg.get('env_cfg') or {}).get('num_threads')
        with cpu_speed(self.cpu_speed, device, threads=threads, logger=self.logger):
            yield

    def train(self):
        with self._cpu_speed():
            return super().train()

    def val(self):
        with self._cpu_speed():
            return super().val()

    def test(self):
        with self._cpu_speed():
            return super().test()

    def load_checkpoint(self, filename: str, map_location='cpu', strict: Optional[bool] = None,
                        revise_keys=None):
        """Load weights through the project's one loader: own, re-saved and foreign files alike.

        ``load_state_dict_any`` reads every path with ``torch.load(weights_only=True)`` and one
        allow-list, converts official / HF / mmpretrain keys, and the keys are checked strictly
        (``CheckpointMismatchError`` lists missing, unexpected and mis-shaped keys). ``load_strict = False``
        in the config loads what matches instead (fine-tuning with another head); a resume is always
        strict. Nothing stored in the checkpoint is executed: the config text mmengine's ``resume`` would
        run (``meta['config']``) is dropped here.
        """
        from cnclip_mm.models.converters import load_state_dict_any, load_state_dict_into
        filename = resolve_checkpoint(filename)
        state_dict, fmt, extra = load_state_dict_any(filename)
        if self._resuming and fmt != 'mm':
            raise ValueError(f'cannot resume from {filename}: it is a {fmt}-format checkpoint without the '
                             'optimizer and loop state of a cnclip-mm run; use load_from (weights only)')
        checkpoint = dict(extra.get('raw') or {}, state_dict=state_dict)
        checkpoint['meta'] = {k: v for k, v in (checkpoint.get('meta') or {}).items() if k != 'config'}
        if self._resuming:
            missing = [k for k in ('message_hub', 'optimizer') if k not in checkpoint]
            missing += [f'meta.{k}' for k in ('epoch', 'iter') if k not in checkpoint['meta']]
            if missing:
                raise ValueError(f'cannot resume from {filename}: it lacks {", ".join(missing)} (a weights-only '
                                 'checkpoint); use load_from')
        if fmt == 'mm':
            self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        strict = True if self._resuming else (self.load_strict if strict is None else strict)
        load_state_dict_into(model, state_dict, strict=strict, source=f'{filename} ({fmt} format)')
        self._has_loaded = True
        self.logger.info(f'loaded {filename} ({fmt} format, {"strict" if strict else "non-strict"})')
        return checkpoint

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args=None, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args=None) -> None:
        """mmengine's checkpoint plus ``meta['model_cfg']`` (the model config as plain data), written atomically.

        A local file is written as ``<name>.part``, flushed to disk and renamed over ``<name>``, so a
        process killed while saving never leaves a truncated checkpoint under the real name.
        """
        from cnclip_mm.models.converters.stored_config import plain_model_cfg
        meta = dict(meta or {})
        model_cfg = plain_model_cfg(self.cfg.get('model'))
        if model_cfg is not None:
            meta['model_cfg'] = model_cfg
        local = file_client_args is None and backend_args is None and '://' not in str(out_dir)
        part = f'{filename}.part' if local else filename
        super().save_checkpoint(out_dir, part, file_client_args, save_optimizer, save_param_scheduler,
                                meta, by_epoch, backend_args)
        if local and is_main_process():
            commit_file(osp.join(out_dir, part), osp.join(out_dir, filename))

    @classmethod
    def build_dataloader(cls, dataloader, seed=None, diff_rank_seed=False):
        """mmengine's, after a ``num_workers='auto'`` is made a number from the thread count in force
        (:func:`cnclip_mm.cpu.resolve_auto_workers`; inside ``train`` / ``val`` / ``test`` that is
        ``cpu_speed``'s deterministic choice)."""
        return super().build_dataloader(resolve_auto_workers(dataloader, torch.get_num_threads()), seed=seed,
                                        diff_rank_seed=diff_rank_seed)

    def build_train_loop(self, loop):
        """Epoch-based loops resume mid-epoch exactly (:class:`ExactResumeEpochBasedTrainLoop`)."""
        if isinstance(loop, dict) and loop.get('type', 'EpochBasedTrainLoop' if loop.get('by_epoch') else None) \
                == 'EpochBasedTrainLoop':
            loop = {k: v for k, v in loop.items() if k != 'by_epoch'}
            loop['type'] = 'ExactResumeEpochBasedTrainLoop'
        return super().build_train_loop(loop)

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
    """:class:`mmengine.runner.Runner` reading extra config keys (see :class:`CLIPRunnerMixin`).
    """


def resolve_checkpoint(filename: str) -> str:
    """Follow a ``last_checkpoint`` pointer file to the checkpoint it names; a URL or model name is
    downloaded once into the cache (``cnclip_mm.models.zoo.resolve_weights``)."""
    from cnclip_mm.models.zoo import resolve_weights
    filename = resolve_weights(filename)
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
