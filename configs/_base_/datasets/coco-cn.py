# COCO-CN retrieval in the official TSV/jsonl layout under data/coco-cn/
# (train / valid / test, all with image_ids): Flickr30K-CN's settings on another folder.
# LMDB: type='ImageTextLMDBDataset'.
_base_ = ['./flickr30k-cn.py']
data_root = 'data/coco-cn'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
