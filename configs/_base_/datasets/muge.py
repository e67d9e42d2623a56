# MUGE retrieval in the official TSV/jsonl layout under data/muge/ (train / valid; the test texts
# carry no image_ids, so evaluation runs on valid). MUGE reports text->image recall only.
# LMDB instead: type='ImageTextLMDBDataset' (after tools/data/build_lmdb.py). To change the image
# size in a leaf, redefine the pipelines (see docs/data.md). TokenizeText takes the config's top-level
# `tokenizer` (set once, in the model base).
data_root = 'data/muge'
img_size = 224
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
# Stack each batch's images and token ids in the worker: two tensors cross to the main process, not 2 per sample.
clip_collate = dict(type='cnclip_mm.clip_collate')
train_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True, drop_last=True, collate_fn=clip_collate,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageTextTSVDataset', data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True, collate_fn=clip_collate,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageTextTSVDataset', data_root=data_root, split='valid', test_mode=True,
                 pipeline=test_pipeline))
val_evaluator = dict(type='RetrievalRecall', t2i_only=True)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
