# Official fine-tune recipe (MUGE / Flickr30K-CN): lr 5e-5, wd 0.001, warm-up 100 iterations,
# cosine over 3 epochs, 128 per GPU x 8 GPUs.
_base_ = ['./pretrain_adamw_cosine.py']
max_epochs = 3
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.001))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
