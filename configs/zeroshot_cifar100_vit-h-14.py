# Zero-shot CIFAR-100, Chinese CLIP ViT-H/14: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/vit-h-14.py', './_base_/evaluation/zeroshot_cifar100.py']
