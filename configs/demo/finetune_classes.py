# Fine-tune the demo model on a classification set: each image's caption is a random Chinese
# template filled with its class name, same-class pairs are positives of the loss (not official,
# see docs/training.md), and zero-shot accuracy on the held-out split is validated during training.
# The set (data/demo_classes, 10 colour x shape classes) is generated on first use; run the demo
# first (tools/run_demo.py) for the weights in load_from, or drop load_from to start from scratch.
_base_ = [
    '../_base_/models/tiny.py',
    '../_base_/schedules/finetune_adamw_cosine.py',
    '../_base_/default_runtime.py',
]
data_root = '{{ fileDirname }}/../../data/demo_classes'  # anchored here: the same set from any folder
img_size = 64
tokenizer = dict(vocab_file=f'{data_root}/vocab.txt', context_length=32)  # the demo vocab + class-name chars
model = dict(
    text_encoder=dict(vocab_size=256),
    loss=dict(type='ContrastiveLoss', positives=('image_id', 'text', 'label')),
)
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', scale=img_size, crop_scale=(0.9, 1.0)),
    dict(type='TokenizeText'),
    dict(type='PackCLIPInputs'),
]
test_pipeline = [dict(type='LoadImage'), dict(type='ResizeExact', scale=img_size), dict(type='PackCLIPInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ClassCaptionDataset', templates=f'{data_root}/templates.txt', pipeline=train_pipeline,
                 dataset=dict(type='DemoClassesDataset', data_root=data_root, generate_if_missing=True,
                              split='train')))
val_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DemoClassesDataset', data_root=data_root, generate_if_missing=True, split='test',
                 test_mode=True, pipeline=test_pipeline))
val_evaluator = dict(type='ZeroShotAccuracy')
val_cfg = dict(type='ValLoop')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
test_cfg = dict(type='TestLoop')
max_epochs = 6
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
custom_hooks = [dict(type='ZeroShotClassesHook', templates=f'{data_root}/templates.txt')]
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(by_epoch=True, interval=max_epochs, max_keep_ckpts=1,
                                     save_best='zeroshot/top1', rule='greater'))
load_from = 'work_dirs/demo/stage2/last_checkpoint'
work_dir = 'work_dirs/demo/finetune_classes'
