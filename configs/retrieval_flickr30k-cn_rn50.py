# Flickr30K-CN test retrieval, Chinese CLIP RN50: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/rn50.py', './_base_/evaluation/retrieval_flickr30k-cn.py']
