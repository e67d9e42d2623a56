# Chinese CLIP ViT-L/14: CLIP ViT-L/14 image tower + RoBERTa-wwm-ext-base text tower (406M params).
_base_ = ['./vit-b-16.py']
model = dict(embed_dim=768, image_encoder=dict(arch='l-14', img_size=224))
