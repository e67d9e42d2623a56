# Both pretraining stages of Chinese CLIP ViT-B/16 in one run: TowerLockHook locks the image tower
# and unlocks it at epoch 15 (rebuilding DDP); a resumed run replays the right stage.
_base_ = ['./stage1_vit-b.py']
custom_hooks = [dict(type='TowerLockHook', unlock_epoch=15)]
