# Chinese CLIP ViT-L/14@336px (407M params).
_base_ = ['./vit-b-16.py']
model = dict(embed_dim=768, image_encoder=dict(arch='l-14-336', img_size=336))
