# RN50 pretraining: as the ViT recipe but AdamW betas (0.9, 0.999), eps 1e-8.
_base_ = ['./pretrain_adamw_cosine.py']
optim_wrapper = dict(optimizer=dict(betas=(0.9, 0.999), eps=1e-8))
