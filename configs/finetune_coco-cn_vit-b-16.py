# Fine-tune Chinese CLIP ViT-B/16 on COCO-CN with the published recipe: lr 3e-5, 20 epochs,
# gradient checkpointing, otherwise as MUGE (wd 0.001, warm-up 100, 128 per GPU x 8).
_base_ = [
    './_base_/models/vit-b-16.py',
    './_base_/datasets/coco-cn.py',
    './_base_/schedules/finetune_adamw_cosine.py',
    './_base_/default_runtime.py',
]
model = dict(
    init_cfg=dict(type='ChineseCLIPCheckpoint', checkpoint='pretrained/clip_cn_vit-b-16.pt'),
    image_encoder=dict(grad_checkpointing=True), text_encoder=dict(grad_checkpointing=True))
train_dataloader = dict(batch_size=128)
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
max_epochs = 20
optim_wrapper = dict(optimizer=dict(lr=3e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
