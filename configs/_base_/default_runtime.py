# Runtime shared by every config: scope, runner, hooks, logging, checkpoints, environment.
default_scope = 'cnclip_mm'
runner_type = 'CLIPRunner'  # mmengine Runner + reset_optimizer / reset_data_offset keys

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),  # loss, lr, time, data_time and ETA
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Every N iterations, keep the last 3, plus the best by validation mean recall.
    checkpoint=dict(type='CLIPCheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3,
                    save_last=True, save_best='retrieval/mean_recall', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Always on, so leaf configs' custom_hooks never have to repeat them:
    logit_scale_clamp=dict(type='LogitScaleClampHook'),  # keep exp(logit_scale) <= 100 after each step
    rng_state=dict(type='RNGStateHook'),  # RNG states in checkpoints: a resume continues bit-exactly
    bad_samples=dict(type='BadSampleReportHook'),  # skipped bad samples counted and logged per epoch
    truncation=dict(type='TruncationReportHook'),  # captions cut to the context length, logged per epoch
)
custom_hooks = []

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/train.py switches to gloo on CPU-only machines
)
# CPU-capable DDP that TowerLockHook rebuilds when the set of trained parameters changes (the
# scope prefix is needed: mmengine looks wrappers up in its root registry).
model_wrapper_cfg = dict(type='cnclip_mm.CLIPDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)

# TensorBoard: add dict(type='TensorboardVisBackend') here or pass tools/train.py --tensorboard.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(window_size=20, by_epoch=True)
log_level = 'INFO'

load_from = None
resume = False
randomness = dict(seed=0)
