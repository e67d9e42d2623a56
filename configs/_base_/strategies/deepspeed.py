# DeepSpeed ZeRO-2 through MMEngine's FlexibleRunner: tools/train.py CONFIG --strategy deepspeed.
# GPU only (DeepSpeed needs CUDA and `pip install deepspeed`); not tested on the CPU CI machines.
runner_type = 'CLIPFlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    fp16=dict(enabled=True, loss_scale=0, initial_scale_power=16),
    zero_optimization=dict(stage=2, allgather_partitions=True, reduce_scatter=True,
                           overlap_comm=True, contiguous_gradients=True),
    gradient_clipping=1.0,
)
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
model_wrapper_cfg = None
