# Chinese CLIP RN50: ModifiedResNet-50 with attention pooling + RBT3 text tower (77M params).
_base_ = ['./vit-b-16.py']
model = dict(
    embed_dim=1024,
    image_encoder=dict(_delete_=True, type='ModifiedResNet', arch='rn50', img_size=224),
    text_encoder=dict(arch='rbt3'),
)
