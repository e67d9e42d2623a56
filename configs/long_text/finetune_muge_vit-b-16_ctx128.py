# MUGE fine-tune of Chinese CLIP ViT-B/16 with captions up to 128 tokens (official: 52). The released
# weights load unchanged: the RoBERTa text tower has 512 learned positions. The one line below sets the
# model's tokenizer and every pipeline's TokenizeText (cnclip_mm.utils.share_tokenizer); captions still
# longer are truncated and counted per epoch in the log (TruncationReportHook).
_base_ = ['../finetune_muge_vit-b-16.py']
tokenizer = dict(context_length=128)
