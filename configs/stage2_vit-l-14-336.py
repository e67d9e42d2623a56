# Chinese CLIP ViT-L/14@336px pretraining, stage 2: everything unlocked, weights from stage 1's last
# checkpoint (load_from = weights only: official --reset-optimizer --reset-data-offset).
_base_ = ['./stage1_vit-l-14-336.py']
model = dict(image_encoder=dict(init_cfg=None), text_encoder=dict(pretrained=None))
load_from = 'work_dirs/stage1_vit-l-14-336/last_checkpoint'
custom_hooks = []  # stage 2: no TowerLockHook, every parameter trains
