# Demo stage 1: tiny Chinese CLIP on the synthetic demo set, image tower locked (random init here,
# OpenAI CLIP weights in the real recipe): only the text tower and text projection train.
# Run through tools/run_demo.py, or: python tools/train.py configs/demo/stage1.py
_base_ = [
    '../_base_/models/tiny.py',
    '../_base_/datasets/demo.py',
    '../_base_/schedules/pretrain_adamw_cosine.py',
    '../_base_/default_runtime.py',
]
tokenizer = dict(vocab_file='{{ fileDirname }}/../../data/demo/vocab.txt', context_length=32)  # the demo set's
model = dict(text_encoder=dict(vocab_size=256),  # the demo's char vocab has < 256 entries
             image_encoder=dict(arch=dict(patch_size=16)))
max_epochs = 8
# Inline loading beside 2 threads on a quiet machine, one worker beside 1 thread on a busy one (threads.auto_workers).
train_dataloader = dict(batch_size=64, num_workers='auto', persistent_workers=True)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(by_epoch=True, interval=max_epochs, max_keep_ckpts=1))
custom_hooks = [dict(type='TowerLockHook')]
work_dir = 'work_dirs/demo/stage1'
