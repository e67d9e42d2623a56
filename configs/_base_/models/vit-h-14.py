# Chinese CLIP ViT-H/14 (head width 80) + RoBERTa-wwm-ext-large text tower (958M params).
_base_ = ['./vit-b-16.py']
model = dict(
    embed_dim=1024,
    image_encoder=dict(arch='h-14', img_size=224),
    text_encoder=dict(arch='large'),
)
