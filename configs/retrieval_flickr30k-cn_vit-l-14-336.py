# Flickr30K-CN test retrieval, Chinese CLIP ViT-L/14@336: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/vit-l-14-336.py', './_base_/evaluation/retrieval_flickr30k-cn.py']
# 336 px input: the dataset base resizes to 224.
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'), dict(type='ResizeExact', scale=336), dict(type='CleanCaption'),
    dict(type='TokenizeText'), dict(type='PackCLIPInputs')]))
val_dataloader = test_dataloader  # keep both loaders at 336 px
