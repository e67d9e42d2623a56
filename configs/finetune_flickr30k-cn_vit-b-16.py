# Fine-tune Chinese CLIP ViT-B/16 on Flickr30K-CN: the MUGE recipe (lr 5e-5, wd 0.001, warm-up 100,
# 3 epochs, 128 per GPU x 8), validated in both directions.
_base_ = [
    './_base_/models/vit-b-16.py',
    './_base_/datasets/flickr30k-cn.py',
    './_base_/schedules/finetune_adamw_cosine.py',
    './_base_/default_runtime.py',
]
model = dict(init_cfg=dict(type='ChineseCLIPCheckpoint', checkpoint='pretrained/clip_cn_vit-b-16.pt'))
train_dataloader = dict(batch_size=128)
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
