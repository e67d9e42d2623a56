"""Checkpoints that hold the adapters alone: a few MB instead of the whole model."""

import os.path as osp
from typing import Optional

from mmengine.hooks import Hook

from cnclip_mm.engine.runner.ddp import unwrap_model
from cnclip_mm.registry import HOOKS


@HOOKS.register_module()
class AdapterCheckpointHook(Hook):
    """Keep only the adapters (and ``model.adapters.trainable``) in the checkpoints a run saves.

    The frozen base weights are the file the run loaded (``load_from``), or ``base``; its absolute path is
    stored as ``meta['adapter_base']`` beside ``meta['adapters_only'] = True``. Every loader of the
    project (``load_state_dict_any``: ``init_model``, ``load_from``, ``--resume``, ``tools/test.py``) then
    reads the base first and lays the adapters over it, so such a checkpoint resumes exactly (the base
    never changes) and evaluates like a full one. Optimizer and loop state are saved as usual: only the
    trainable parameters have optimizer state.

    Args:
        base: the base weights (path, ``last_checkpoint`` pointer, URL or model name); default: the
            run's ``load_from``, or the base of the adapters-only checkpoint it resumed from.
    """

    priority = 'LOW'

    def __init__(self, base: Optional[str] = None) -> None:
        self.base = base
        self._resumed_base: Optional[str] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        if meta.get('adapters_only'):
            self._resumed_base = meta.get('adapter_base')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        from cnclip_mm.models.adapters import adapter_state_dict, has_adapters

        model = unwrap_model(runner.model)
        if not has_adapters(model):
            raise ValueError(
                'AdapterCheckpointHook: the model has no adapters; set model.adapters in the config '
                'or drop the hook'
            )
        checkpoint['state_dict'] = adapter_state_dict(model, checkpoint['state_dict'])
        meta = checkpoint.setdefault('meta', {})
        meta.update(adapters_only=True, adapter_base=self._base_path(runner))

    def _base_path(self, runner) -> str:
        from cnclip_mm.engine.runner.clip_runner import resolve_checkpoint

        base = self.base or self._resumed_base or runner.cfg.get('load_from')
        if not base:
            raise ValueError(
                'AdapterCheckpointHook: no base weights to name in the checkpoint; set load_from '
                "(the weights the adapters were trained on) or the hook's base"
            )
        return osp.abspath(resolve_checkpoint(base))
