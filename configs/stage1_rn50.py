# Chinese CLIP RN50 pretraining, stage 1 (locked-image tuning): image tower from OpenAI CLIP
# (RN50.pt under pretrained/), locked; text tower from hfl/rbt3. Data: MUGE here, swap in your
# pairs (docs/data.md). python tools/train.py THIS_FILE  |  tools/dist_train.sh THIS_FILE 8
_base_ = [
    './_base_/models/rn50.py',
    './_base_/datasets/muge.py',
    './_base_/schedules/pretrain_rn50.py',
    './_base_/default_runtime.py',
]
model = dict(
    image_encoder=dict(init_cfg=dict(type='OpenAICLIPVisual', checkpoint='pretrained/RN50.pt')),
    text_encoder=dict(pretrained='hfl/rbt3'),
)
optim_wrapper = dict(optimizer=dict(lr=0.0005))
custom_hooks = [dict(type='TowerLockHook')]
