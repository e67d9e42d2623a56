# Flickr30K-CN test retrieval, Chinese CLIP ViT-B/16: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/vit-b-16.py', './_base_/evaluation/retrieval_flickr30k-cn.py']
