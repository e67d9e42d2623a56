"""Process-group start for CPU-only torch builds (gloo)."""
import os

import torch
import torch.distributed as torch_dist


def init_cpu_process_group(launcher: str, env_cfg: dict) -> None:
    """Start the gloo process group of a torchrun (``pytorch`` launcher) job on a CPU-only build.

    mmengine's launcher calls ``torch.cuda.set_device`` unconditionally, which fails without CUDA;
    once the group exists mmengine (Runner and strategies alike) skips its own start.
    """
    if launcher != 'pytorch' or torch.cuda.is_available() or torch_dist.is_initialized():
        return
    dist_cfg = dict((env_cfg or {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'gloo')
    torch_dist.init_process_group(
        backend='gloo' if backend == 'nccl' else backend, rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']), **dist_cfg)
