# Flickr30K-CN retrieval test (test split, both directions).
_base_ = ['../datasets/flickr30k-cn.py', '../default_runtime.py']
train_dataloader = None  # test only: no training loop
val_cfg = dict(type='ValLoop')  # the dataset base also defines val_dataloader / val_evaluator
test_cfg = dict(type='TestLoop')
