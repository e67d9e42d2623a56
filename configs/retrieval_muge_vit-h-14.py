# MUGE valid (text->image) retrieval, Chinese CLIP ViT-H/14: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/vit-h-14.py', './_base_/evaluation/retrieval_muge.py']
