# Chinese CLIP ViT-L/14@336px pretraining, stage 1 (locked-image tuning): image tower from OpenAI CLIP
# (ViT-L-14-336px.pt under pretrained/), locked; text tower from hfl/chinese-roberta-wwm-ext. Data: MUGE here, swap in your
# pairs (docs/data.md). python tools/train.py THIS_FILE  |  tools/dist_train.sh THIS_FILE 8
_base_ = [
    './_base_/models/vit-l-14-336.py',
    './_base_/datasets/muge.py',
    './_base_/schedules/pretrain_adamw_cosine.py',
    './_base_/default_runtime.py',
]
model = dict(
    image_encoder=dict(init_cfg=dict(type='OpenAICLIPVisual', checkpoint='pretrained/ViT-L-14-336px.pt')),
    text_encoder=dict(pretrained='hfl/chinese-roberta-wwm-ext'),
)
optim_wrapper = dict(optimizer=dict(lr=0.0004))
custom_hooks = [dict(type='TowerLockHook')]
# 336 px input: the dataset base works at 224.
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRandomResizedCrop', scale=336, crop_scale=(0.9, 1.0)), dict(type='CleanCaption'),
    dict(type='TokenizeText'),
    dict(type='PackCLIPInputs')]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'), dict(type='ResizeExact', scale=336), dict(type='CleanCaption'),
    dict(type='TokenizeText'), dict(type='PackCLIPInputs')]))
test_dataloader = val_dataloader  # the base's test loader was bound to its 224 px val loader
