# Zero-shot on an ELEVATER-layout folder: {data_root}/test/{index:03d}/*.jpg + label_cn.txt.
_base_ = ['../datasets/elevater.py', '../default_runtime.py']
train_dataloader = None  # test only: no training loop
val_cfg = dict(type='ValLoop')  # the dataset base also defines val_dataloader / val_evaluator
test_cfg = dict(type='TestLoop')
# Class names from label_cn.txt; the official prompts for the set, chosen by the data_root folder name
# (e.g. food-101 -> 'food', most sets -> the 183 'openai' ones). templates='imagenet' etc. selects another.
custom_hooks = [dict(type='ZeroShotClassesHook')]
