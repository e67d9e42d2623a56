# Chinese CLIP ViT-B/16: CLIP ViT-B/16 image tower + RoBERTa-wwm-ext-base text tower (188M params).
# The one tokenizer of every config built on a model base: it feeds model.tokenizer and every TokenizeText
# step that names none (docs/design.md#tokenizer-one-key-per-config). vocab_file=None: the official vocab
# shipped in the package;
# --cfg-options tokenizer.vocab_file=PATH|FOLDER|HUB_NAME changes the model and all pipelines at once.
tokenizer = dict(type='ChineseTokenizer', vocab_file=None, context_length=52)
model = dict(
    type='ChineseCLIP',
    embed_dim=512,
    image_encoder=dict(type='CLIPVisionTransformer', arch='b-16', img_size=224),
    text_encoder=dict(type='ChineseBertEncoder', arch='base'),
    loss=dict(type='ContrastiveLoss'),
    data_preprocessor=dict(type='CLIPDataPreprocessor'),
)
