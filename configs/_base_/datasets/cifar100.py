# CIFAR-100 zero-shot classification: data/cifar100/cifar-100-python/{train,test,meta}.
# The Chinese class names ship with the dataset (metainfo['classes']).
data_root = 'data/cifar100'
img_size = 224
zeroshot_pipeline = [
    dict(type='LoadImage', convert_rgb='first'),  # the official zero-shot ImageFolder order
    dict(type='ResizeExact', scale=img_size),
    dict(type='PackCLIPInputs'),
]
clip_collate = dict(type='cnclip_mm.clip_collate')  # one image tensor per batch from the workers
test_dataloader = dict(
    batch_size=256, num_workers=4, persistent_workers=True, collate_fn=clip_collate,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CIFAR100Dataset', data_root=data_root, split='test', test_mode=True,
                 pipeline=zeroshot_pipeline))
test_evaluator = dict(type='ZeroShotAccuracy')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
