# Demo stage 1 streamed from shards of the demo set (non-resampled: each epoch reads all 8 shards once).
# python tools/data/convert_to_shards.py --format tsv --data-root data/demo --out-dir data/demo/shards \
#     --samples-per-shard 250 && python tools/train.py configs/demo/stage1_wds.py
_base_ = ['./stage1.py']
max_iters = 240  # 8 epochs of 30 batches (2 workers x 15 full batches of 64)
train_dataloader = dict(
    _delete_=True, batch_size=64, num_workers=2, persistent_workers=True, drop_last=True, sampler=None,
    collate_fn={{_base_.clip_collate}},
    dataset=dict(type='WebDatasetImageText', shards='{{ fileDirname }}/../../data/demo/shards/{00000..00007}.tar',
                 shuffle_buffer=500, pipeline={{_base_.train_pipeline}}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(_delete_=True, type='StreamTrainLoop', max_iters=max_iters, val_interval=120)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
work_dir = 'work_dirs/demo/stage1_wds'
