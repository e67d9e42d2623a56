"""Export a ViT ``ChineseCLIP`` to a Hugging Face ``ChineseCLIPModel`` folder (weights, config, tokenizer)."""
import json
import os
from pathlib import Path
from typing import Optional

from torch import nn

from .hf import mm_to_hf

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
BERT_FIELDS = ('vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size',
               'max_position_embeddings', 'type_vocab_size', 'hidden_act', 'layer_norm_eps',
               'hidden_dropout_prob', 'attention_probs_dropout_prob', 'initializer_range', 'pad_token_id')


def build_hf_config(model: nn.Module):
    """A ``transformers.ChineseCLIPConfig`` describing ``model`` (a ViT ``ChineseCLIP``)."""
    from transformers import ChineseCLIPConfig

    vision = model.image_encoder
    if not hasattr(vision, 'patch_size'):
        raise ValueError(f'Hugging Face ChineseCLIPModel has no {type(vision).__name__} image tower (only ViT); '
                         'an RN50 model cannot be exported to the HF format')
    bert_config = model.text_encoder.bert.config
    text_config = {name: getattr(bert_config, name) for name in BERT_FIELDS}
    vision_config = dict(
        hidden_size=vision.width, intermediate_size=4 * vision.width, projection_dim=vision.output_dim,
        num_hidden_layers=vision.layers, num_attention_heads=vision.heads, patch_size=vision.patch_size,
        image_size=vision.img_size, hidden_act='quick_gelu', layer_norm_eps=1e-5)
    return ChineseCLIPConfig(text_config=text_config, vision_config=vision_config,
                             projection_dim=model.embed_dim,
                             logit_scale_init_value=float(model.logit_scale.detach()))


def export_hf(model: nn.Module, out_dir: str, tokenizer: Optional[object] = None) -> str:
    """Write ``model`` as a folder that ``transformers.ChineseCLIPModel.from_pretrained`` loads.

    The folder gets ``config.json``, ``model.safetensors``, the tokenizer files and a
    ``preprocessor_config.json`` (bicubic resize to the square input size, CLIP mean/std, no crop).

    Args:
        model: a ``ChineseCLIP`` with a ViT image tower.
        out_dir: target folder (created).
        tokenizer: a ``ChineseTokenizer``; defaults to ``model.tokenizer``.

    Returns:
        ``out_dir``.
    """
    from transformers import ChineseCLIPModel

    tokenizer = tokenizer if tokenizer is not None else getattr(model, 'tokenizer', None)
    if tokenizer is None:
        raise ValueError('the HF export needs tokenizer files: the model has no tokenizer, pass tokenizer=')
    config = build_hf_config(model)
    hf_model = ChineseCLIPModel(config)
    state_dict = mm_to_hf({k: v.detach().cpu() for k, v in model.state_dict().items()})
    hf_model.load_state_dict(state_dict, strict=True)
    os.makedirs(out_dir, exist_ok=True)
    hf_model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    size = model.image_encoder.img_size
    processor = dict(
        image_processor_type='ChineseCLIPImageProcessor', do_resize=True, size=dict(height=size, width=size),
        resample=3, do_center_crop=False, crop_size=dict(height=size, width=size), do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True)
    (Path(out_dir) / 'preprocessor_config.json').write_text(json.dumps(processor, indent=2), encoding='utf-8')
    return out_dir
