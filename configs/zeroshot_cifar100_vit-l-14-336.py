# Zero-shot CIFAR-100, Chinese CLIP ViT-L/14@336: python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['./_base_/models/vit-l-14-336.py', './_base_/evaluation/zeroshot_cifar100.py']
# 336 px input: the dataset base's pipeline (the official zero-shot order, convert_rgb='first') with its
# resize set to the model's size instead of 224.
zeroshot_pipeline = [dict(step, scale=336) if step['type'] == 'ResizeExact' else step
                     for step in _base_.zeroshot_pipeline]
test_dataloader = dict(dataset=dict(pipeline=zeroshot_pipeline))
val_dataloader = test_dataloader  # keep both loaders at 336 px
