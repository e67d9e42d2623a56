# configs/demo/finetune_classes.py distilled from a frozen teacher: here the demo model before
# fine-tuning (stage 2's checkpoint; any checkpoint init_model loads, of any variant, works).
_base_ = ['./finetune_classes.py']
model = dict(loss=dict(
    _delete_=True, type='DistillationLoss',
    teacher=dict(checkpoint='work_dirs/demo/stage2/epoch_12.pth'),
    contrastive=dict(type='ContrastiveLoss', positives=('image_id', 'text', 'label')),
    cosine_weight=1.0, kl_weight=1.0, kl_temperature=1.0))
work_dir = 'work_dirs/demo/finetune_classes_distill'
