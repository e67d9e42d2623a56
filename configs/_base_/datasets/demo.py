# The synthetic demo set (data/demo/ of the repository, generated on first use: generate_if_missing): 64x64
# shapes with Chinese captions, its own char-level vocab (data/demo/vocab.txt, set as the top-level tokenizer by
# configs/demo/), context 32. The path is anchored at this file, so runs from any folder share one set.
data_root = '{{ fileDirname }}/../../../data/demo'
img_size = 64
# Training: decode + official random-resized crop in one step; JPEGs are decoded at the reduced DCT scale the
# crop allows and area-resized (about one level of 255 from the exact pixels; draft=False for those; docs/data.md).
# Evaluation keeps the official preprocessing exactly: full decode, bicubic resize.
train_pipeline = [
    dict(type='LoadRandomResizedCrop', scale=img_size, crop_scale=(0.9, 1.0)),
    dict(type='CleanCaption'),
    dict(type='TokenizeText'),
    dict(type='PackCLIPInputs'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='ResizeExact', scale=img_size),
    dict(type='CleanCaption'),
    dict(type='TokenizeText'),
    dict(type='PackCLIPInputs'),
]
# A batch leaves a worker as two tensors, not two per sample. The demo trains eagerly on CPU, so its captions are
# trimmed to the longest exactly (pad_to_multiple_of=1); the default 8 keeps a compiler's shapes few.
clip_collate = dict(type='cnclip_mm.clip_collate', pad_to_multiple_of=1)
train_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=True, drop_last=True, collate_fn=clip_collate,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='DemoImageTextDataset', data_root=data_root, generate_if_missing=True, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=2, persistent_workers=True, collate_fn=clip_collate,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DemoImageTextDataset', data_root=data_root, generate_if_missing=True, split='valid',
                 test_mode=True, pipeline=test_pipeline))
val_evaluator = dict(type='RetrievalRecall')
test_dataloader = dict(
    batch_size=128, num_workers=2, persistent_workers=True, collate_fn=clip_collate,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DemoImageTextDataset', data_root=data_root, generate_if_missing=True, split='test',
                 test_mode=True, pipeline=test_pipeline))
test_evaluator = val_evaluator
