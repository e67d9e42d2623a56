# Zero-shot CIFAR-100, Chinese CLIP ViT-B/16: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/vit-b-16.py', './_base_/evaluation/zeroshot_cifar100.py']
