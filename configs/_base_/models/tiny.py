# A tiny Chinese CLIP for tests and the demo: 64px ViT (patch 8) + 2-layer BERT. Shipped vocab, context 32.
_base_ = ['./vit-b-16.py']
tokenizer = dict(context_length=32)
model = dict(
    embed_dim=64,
    image_encoder=dict(
        arch=dict(_delete_=True, width=128, layers=3, heads=4, patch_size=8), img_size=64),
    text_encoder=dict(
        arch=dict(_delete_=True, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=256),
        vocab_size=21128),
)
