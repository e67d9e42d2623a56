"""Runner and model-wrapper pieces."""
from .clip_runner import CLIPRunner
from .ddp import (
    CLIPDistributedDataParallel,
    FeatureCacheTrainStep,
    rewrap_ddp,
    teardown_distributed,
    unwrap_model,
)
from .exact_resume_loop import ExactResumeEpochBasedTrainLoop
from .flexible_runner import CLIPFlexibleRunner
from .fsdp import CLIPFullyShardedDataParallel
from .stream_loop import StreamTrainLoop

__all__ = ['CLIPDistributedDataParallel', 'CLIPFlexibleRunner', 'CLIPFullyShardedDataParallel', 'CLIPRunner',
           'ExactResumeEpochBasedTrainLoop', 'FeatureCacheTrainStep', 'StreamTrainLoop', 'rewrap_ddp',
           'teardown_distributed', 'unwrap_model']
