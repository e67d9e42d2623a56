# Zero-shot CIFAR-100 (test split; Chinese class names from the dataset).
_base_ = ['../datasets/cifar100.py', '../default_runtime.py']
train_dataloader = None  # test only: no training loop
val_cfg = dict(type='ValLoop')  # the dataset base also defines val_dataloader / val_evaluator
test_cfg = dict(type='TestLoop')
# Class embeddings from the official prompts (the 183 'openai' ones for CIFAR-100), rebuilt before each
# evaluation; templates='cifar100' (11 CIFAR prompts) or a file/list selects another set.
custom_hooks = [dict(type='ZeroShotClassesHook')]
