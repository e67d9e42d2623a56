# MUGE retrieval test (valid split, text->image recall, official protocol).
_base_ = ['../datasets/muge.py', '../default_runtime.py']
train_dataloader = None  # test only: no training loop
val_cfg = dict(type='ValLoop')  # the dataset base also defines val_dataloader / val_evaluator
test_cfg = dict(type='TestLoop')
