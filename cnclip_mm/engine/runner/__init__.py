"""Runner and model-wrapper pieces."""
from .clip_runner import CLIPRunner
from .ddp import CLIPDistributedDataParallel, rewrap_ddp, teardown_distributed, unwrap_model
from .stream_loop import StreamTrainLoop

__all__ = ['CLIPDistributedDataParallel', 'CLIPRunner', 'StreamTrainLoop', 'rewrap_ddp', 'teardown_distributed',
           'unwrap_model']
