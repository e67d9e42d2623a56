"""Runner and model-wrapper pieces."""
from .clip_runner import CLIPRunner
from .ddp import CLIPDistributedDataParallel, rewrap_ddp, teardown_distributed, unwrap_model
from .exact_resume_loop import ExactResumeEpochBasedTrainLoop

__all__ = ['CLIPDistributedDataParallel', 'CLIPRunner', 'ExactResumeEpochBasedTrainLoop', 'rewrap_ddp',
           'teardown_distributed', 'unwrap_model']
