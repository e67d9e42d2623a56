# configs/demo/finetune_classes.py with an EMA of the weights for validation and checkpoints.
_base_ = ['./finetune_classes.py', '../_base_/ema.py']
custom_hooks = [dict(type='ZeroShotClassesHook', templates='{{ fileDirname }}/../../data/demo_classes/templates.txt'), {{_base_.ema_hook}}]
work_dir = 'work_dirs/demo/finetune_classes_ema'
