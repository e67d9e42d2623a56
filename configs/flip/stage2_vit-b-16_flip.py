# Chinese CLIP ViT-B/16 stage 2 with FLIP patch masking (Li et al. 2023): each training image keeps a random
# half of its 196 patch tokens (class token always kept), the last epoch trains unmasked; evaluation always
# sees every token. docs/training.md "FLIP patch masking".
_base_ = ['../stage2_vit-b.py']
model = dict(image_encoder=dict(mask_ratio=0.5))
custom_hooks = [dict(type='UnmaskedTuningHook', epochs=1)]
