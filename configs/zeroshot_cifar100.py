# Zero-shot CIFAR-100 with Chinese CLIP ViT-B/16; data at data/cifar100/cifar-100-python
_base_ = ['./zeroshot_cifar100_vit-b-16.py']
