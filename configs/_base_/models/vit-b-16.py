# Chinese CLIP ViT-B/16: CLIP ViT-B/16 image tower + RoBERTa-wwm-ext-base text tower (188M params).
model = dict(
    type='ChineseCLIP',
    embed_dim=512,
    image_encoder=dict(type='CLIPVisionTransformer', arch='b-16', img_size=224),
    text_encoder=dict(type='ChineseBertEncoder', arch='base'),
    tokenizer=dict(type='ChineseTokenizer', vocab_file='hfl/chinese-roberta-wwm-ext', context_length=52),
    loss=dict(type='ContrastiveLoss'),
    data_preprocessor=dict(type='CLIPDataPreprocessor'),
)
