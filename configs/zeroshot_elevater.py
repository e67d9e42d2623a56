# Zero-shot on one ELEVATER set with ViT-B/16; pick the set with --cfg-options test_dataloader.dataset.data_root=data/elevater/NAME
_base_ = ['./_base_/models/vit-b-16.py', './_base_/evaluation/zeroshot_elevater.py']
