"""FSDP1 through MMEngine: a wrapper that runs on CPU (gloo), keeps scalar parameters and knows
``accum_freq``; a strategy that loads optimizer states with the current torch API."""
import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy
from mmengine.model.wrappers import MMFullyShardedDataParallel
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel

from cnclip_mm.registry import MODEL_WRAPPERS, STRATEGIES

from .ddp import FeatureCacheTrainStep


def _average_grad(param: torch.Tensor) -> None:
    dist.all_reduce(param.grad)
    param.grad /= dist.get_world_size()


@MODEL_WRAPPERS.register_module()
class CLIPFullyShardedDataParallel(FeatureCacheTrainStep, MMFullyShardedDataParallel):
    """:class:`MMFullyShardedDataParallel` for Chinese CLIP.

    * CPU-only torch: ``device_id`` (a rank from mmengine's FSDPStrategy) becomes the CPU device,
      without which FSDP refuses to run; ``sync_module_states`` is done here by broadcasting.
    * FSDP1 cannot shard 0-d parameters (``logit_scale``): they are left out of sharding
      (``ignored_states``) and their gradient is averaged over ranks after each backward, as DDP does.
    * ``train_step`` delegates to the feature-cache accumulator when ``accum_freq > 1``.
    * Full state dicts on CPU are not "offloaded" (see :meth:`set_state_dict_type`).

    Tower locking works because the strategy uses ``use_orig_params=True``: the original
    parameters stay visible and their ``requires_grad`` may change between steps.
    """

    def __init__(self, module: nn.Module, device_id=None, **kwargs) -> None:
        if not torch.cuda.is_available():
            device_id = torch.device('cpu')
            if kwargs.pop('sync_module_states', False):  # FSDP does it on GPUs only
                with torch.no_grad():
                    for tensor in [*module.parameters(), *module.buffers()]:
                        dist.broadcast(tensor, src=0)
        scalars = [p for p in module.parameters() if p.dim() == 0]
        if scalars:
            kwargs['ignored_states'] = list(kwargs.get('ignored_states') or []) + scalars
            for param in scalars:
                param.register_post_accumulate_grad_hook(_average_grad)
        super().__init__(module=module, device_id=device_id, **kwargs)

    @staticmethod
    def set_state_dict_type(module, state_dict_type, state_dict_config=None, optim_state_dict_config=None):
        """FSDP's own, except that without CUDA nothing is "offloaded to CPU": on a CPU module the
        offload frees the memory a full state dict's tensors still point to (a segfault on save)."""
        if not torch.cuda.is_available():
            for config in (state_dict_config, optim_state_dict_config):
                if getattr(config, 'offload_to_cpu', False):
                    config.offload_to_cpu = False
        return FullyShardedDataParallel.set_state_dict_type(
            module, state_dict_type, state_dict_config, optim_state_dict_config)


@STRATEGIES.register_module()
class CLIPFSDPStrategy(FSDPStrategy):
    """mmengine 0.10's :class:`FSDPStrategy` with ``load_optim_state_dict`` calling
    ``FSDP.optim_state_dict_to_load`` by keyword (torch 2.x changed its argument order)."""

    def load_optim_state_dict(self, state_dict: dict) -> None:
        optim_state_dict = FullyShardedDataParallel.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)
