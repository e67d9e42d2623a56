# Zero-shot CIFAR-100, Chinese CLIP ViT-L/14: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/vit-l-14.py', './_base_/evaluation/zeroshot_cifar100.py']
