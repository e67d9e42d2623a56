"""Runner and model-wrapper pieces."""
from .clip_runner import CLIPRunner
from .ddp import CLIPDistributedDataParallel, rewrap_ddp, unwrap_model

__all__ = ['CLIPDistributedDataParallel', 'CLIPRunner', 'rewrap_ddp', 'unwrap_model']
