"""Runner and model-wrapper pieces."""
from .clip_runner import CLIPRunner
from .ddp import CLIPDistributedDataParallel, rewrap_ddp, teardown_distributed, unwrap_model

__all__ = ['CLIPDistributedDataParallel', 'CLIPRunner', 'rewrap_ddp', 'teardown_distributed',
           'unwrap_model']
