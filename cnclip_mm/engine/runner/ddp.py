"""A DDP wrapper that also runs on CPU, knows the feature-cache accumulation, and can be rebuilt.

DDP fixes the set of parameters it reduces when it wraps the model. Locking or unlocking a tower
later changes that set, so :func:`rewrap_ddp` rebuilds the wrapper around the same module.
"""
import gc
from typing import Dict, Union

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnclip_mm.registry import MODEL_WRAPPERS


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the bare model inside a (DDP) model wrapper."""
    return model.module if is_model_wrapper(model) else model


class FeatureCacheTrainStep:
    """Mixin for model wrappers: ``train_step`` goes to the feature-cache accumulator when the model
    has ``accum_freq > 1`` (the accumulator drives the wrapper, so gradients sync once per step)."""

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        accum_freq = getattr(self.module, 'accum_freq', 1)
        if accum_freq > 1:
            if getattr(self, '_accumulator', None) is None:
                from cnclip_mm.models.feature_cache import FeatureCacheAccumulator
                self._accumulator = FeatureCacheAccumulator(self, accum_freq)
            return self._accumulator.train_step(data, optim_wrapper)
        return super().train_step(data, optim_wrapper)


@MODEL_WRAPPERS.register_module()
class CLIPDistributedDataParallel(FeatureCacheTrainStep, MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` that drops ``device_ids`` for CPU modules (gloo runs) and
    delegates ``train_step`` to the feature-cache accumulator when the model has ``accum_freq > 1``."""

    def __init__(self, module: nn.Module, device_ids=None, **kwargs) -> None:
        if device_ids is not None and all(p.device.type == 'cpu' for p in module.parameters()):
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def rewrap_ddp(ddp: nn.Module) -> nn.Module:
    """Rebuild a DDP wrapper so it reduces exactly the parameters that now require grad.

    A wrapper with ``find_unused_parameters=True`` (and no static graph) copes with frozen
    parameters by itself and is returned unchanged, as is any non-DDP model.
    """
    if not isinstance(ddp, DistributedDataParallel):
        return ddp
    if ddp.find_unused_parameters and not ddp.static_graph:
        return ddp
    ddp._remove_autograd_hooks()
    kwargs = dict(
        device_ids=ddp.device_ids, output_device=ddp.output_device,
        broadcast_buffers=ddp.broadcast_buffers, process_group=ddp.process_group,
        bucket_cap_mb=ddp.bucket_bytes_cap / (1024 * 1024),
        find_unused_parameters=ddp.find_unused_parameters,
        gradient_as_bucket_view=ddp.gradient_as_bucket_view, static_graph=ddp.static_graph)
    if isinstance(ddp, MMDistributedDataParallel):
        kwargs['detect_anomalous_params'] = ddp.detect_anomalous_params
    return type(ddp)(module=ddp.module, **kwargs)


def teardown_distributed(runner) -> None:
    """Unwrap ``runner.model`` and then destroy the process group, in that order.

    If the process group's last reference goes away inside a DDP reducer's destructor (e.g. when the
    runner is garbage-collected at exit), gloo's destructor joins a worker thread that waits for the
    GIL held by that very destructor: a deadlock. Dropping the wrappers while the default group is
    still alive, then destroying the group, avoids it.
    """
    runner.model = unwrap_model(runner.model)
    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
