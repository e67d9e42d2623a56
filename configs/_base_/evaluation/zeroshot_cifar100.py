# Zero-shot CIFAR-100 (test split; Chinese class names from the dataset).
_base_ = ['../datasets/cifar100.py', '../default_runtime.py']
train_dataloader = None  # test only: no training loop
val_cfg = dict(type='ValLoop')  # the dataset base also defines val_dataloader / val_evaluator
test_cfg = dict(type='TestLoop')
# Class embeddings from the official Chinese CIFAR prompts, rebuilt before each evaluation.
custom_hooks = [dict(type='ZeroShotClassesHook', templates='cifar100')]
