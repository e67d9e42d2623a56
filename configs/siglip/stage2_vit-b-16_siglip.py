# Chinese CLIP ViT-B/16 stage 2 trained with SigLIP's sigmoid loss (Zhai et al. 2023) instead of the softmax
# contrastive loss: learned temperature t = exp(logit_scale) from log 10 and bias b (loss_module.logit_bias)
# from -10; other ranks' texts visit in a ring, so the loss's memory does not grow with the number of GPUs.
# docs/training.md "SigLIP loss".
_base_ = ['../stage2_vit-b.py']
model = dict(init_logit_scale=2.302585092994046,  # log 10
             loss=dict(_delete_=True, type='SigLipLoss', init_logit_bias=-10.0, exchange='ring'))
