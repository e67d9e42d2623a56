# Stage 1 ViT-B/16 streamed from WebDataset tar shards (img2dataset layout; write them with
# tools/data/convert_to_shards.py), iteration-based: resampled shards, an epoch every 5000 iterations.
# python tools/train.py THIS_FILE  |  tools/dist_train.sh THIS_FILE 8   (docs/training.md#shards-webdataset-streaming)
_base_ = ['./stage1_vit-b.py']
max_iters = 100000
train_dataloader = dict(
    _delete_=True, batch_size=128, num_workers=4, persistent_workers=True, drop_last=True, sampler=None,
    collate_fn={{_base_.clip_collate}},
    dataset=dict(type='WebDatasetImageText', shards='data/shards/train/{00000..00127}.tar',
                 resampled=True, epoch_length=5000, shuffle_buffer=5000,
                 pipeline={{_base_.train_pipeline}}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(_delete_=True, type='StreamTrainLoop', max_iters=max_iters, val_interval=5000)
log_processor = dict(by_epoch=False)
