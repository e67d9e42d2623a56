# Chinese CLIP ViT-B/16 pretraining, stage 1 (locked-image tuning): image tower from OpenAI CLIP
# (ViT-B-16.pt under pretrained/), locked; text tower from hfl/chinese-roberta-wwm-ext. Data: MUGE here, swap in your
# pairs (docs/data.md). python tools/train.py THIS_FILE  |  tools/dist_train.sh THIS_FILE 8
_base_ = [
    './_base_/models/vit-b-16.py',
    './_base_/datasets/muge.py',
    './_base_/schedules/pretrain_adamw_cosine.py',
    './_base_/default_runtime.py',
]
model = dict(
    image_encoder=dict(init_cfg=dict(type='OpenAICLIPVisual', checkpoint='pretrained/ViT-B-16.pt')),
    text_encoder=dict(pretrained='hfl/chinese-roberta-wwm-ext'),
)
optim_wrapper = dict(optimizer=dict(lr=0.0005))
custom_hooks = [dict(type='TowerLockHook')]
