# Demo stage 2: everything unlocked, initialised from stage 1's weights (load_from: weights only,
# i.e. the official --reset-optimizer --reset-data-offset).
_base_ = ['./stage1.py']
max_epochs = 12
load_from = 'work_dirs/demo/stage1/last_checkpoint'
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=6)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
custom_hooks = []  # stage 2: no TowerLockHook, every parameter trains
work_dir = 'work_dirs/demo/stage2'
