# Flickr30K-CN retrieval in the official TSV/jsonl layout under data/flickr30k-cn/
# (train / valid / test, all with image_ids). LMDB: type='ImageTextLMDBDataset'.
_base_ = ['./muge.py']
data_root = 'data/flickr30k-cn'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(type='RetrievalRecall', t2i_only=False)
test_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True, collate_fn={{_base_.clip_collate}},
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageTextTSVDataset', data_root=data_root, split='test', test_mode=True,
                 pipeline={{_base_.test_pipeline}}))
test_evaluator = val_evaluator
