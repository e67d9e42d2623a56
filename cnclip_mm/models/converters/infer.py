"""The model config a checkpoint needs, read from HF's config.json or from the tensor shapes."""
import math
import re
from typing import Dict, Optional

import torch

StateDict = Dict[str, torch.Tensor]

CONTEXT_LENGTH = 52
# Attention heads are invisible in the shapes: presets for the released widths (H/14 has head width 80),
# otherwise CLIP's head width of 64.
VISION_HEADS = {768: 12, 1024: 16, 1280: 16}
TEXT_HEADS = {768: 12, 1024: 16}
VIT_PRESETS = {
    'b-16': dict(width=768, layers=12, heads=12, patch_size=16, img_size=224),
    'l-14': dict(width=1024, layers=24, heads=16, patch_size=14, img_size=224),
    'l-14-336': dict(width=1024, layers=24, heads=16, patch_size=14, img_size=336),
    'h-14': dict(width=1280, layers=32, heads=16, patch_size=14, img_size=224),
}
RN_PRESETS = {'rn50': dict(layers=(3, 4, 6, 3), width=64)}
BERT_PRESETS = {
    'base': dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    'large': dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    'rbt3': dict(hidden_size=768, num_hidden_layers=3, num_attention_heads=12, intermediate_size=3072),
}
BERT_DEFAULTS = dict(max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act='gelu')
IMG = 'image_encoder.'
TXT = 'text_encoder.bert.'


def infer_model_cfg(state_dict: StateDict, fmt: str = 'mm', extra: Optional[dict] = None) -> dict:
    """Build a ``ChineseCLIP`` model config matching a checkpoint.

    Args:
        state_dict: weights in this project's layout (as returned by ``load_state_dict_any``).
        fmt: the source format; for ``'hf'`` with a ``config.json`` the head counts come from it.
        extra: extra information from ``load_state_dict_any`` (``hf_config``, ``vocab_file``).

    Returns:
        A config dict for ``MODELS.build``, with a tokenizer on the checkpoint's vocabulary when it has one,
        else on the shipped official vocab (``vocab_file=None``).
    """
    extra = extra or {}
    hf_config = extra.get('hf_config') if fmt == 'hf' else None
    _require(state_dict, 'text_projection')
    embed_dim = state_dict['text_projection'].shape[1]
    if any(k.startswith(IMG + 'attnpool.') for k in state_dict):
        image_encoder = _infer_resnet(state_dict)
    else:
        image_encoder = _infer_vit(state_dict, (hf_config or {}).get('vision_config'))
    text_encoder = _infer_bert(state_dict, (hf_config or {}).get('text_config'))
    return dict(
        type='ChineseCLIP',
        embed_dim=embed_dim,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        tokenizer=dict(type='ChineseTokenizer', vocab_file=extra.get('vocab_file'),
                       context_length=CONTEXT_LENGTH),
    )


def _require(state_dict: StateDict, *keys: str) -> None:
    missing = [k for k in keys if k not in state_dict]
    if missing:
        raise KeyError(f'cannot infer the architecture: the checkpoint lacks {missing}')


def _count(state_dict: StateDict, pattern: str) -> int:
    regex = re.compile(pattern)
    indices = {int(m.group(1)) for k in state_dict if (m := regex.match(k))}
    if indices and indices != set(range(len(indices))):
        raise KeyError(f'layer indices matching {pattern!r} are not contiguous: {sorted(indices)}')
    return len(indices)


def _infer_vit(state_dict: StateDict, hf_vision: Optional[dict]) -> dict:
    _require(state_dict, IMG + 'conv1.weight', IMG + 'positional_embedding', IMG + 'proj')
    conv = state_dict[IMG + 'conv1.weight']
    width, patch = conv.shape[0], conv.shape[-1]
    layers = _count(state_dict, re.escape(IMG) + r'transformer\.resblocks\.(\d+)\.')
    grid = math.isqrt(state_dict[IMG + 'positional_embedding'].shape[0] - 1)
    mlp = state_dict.get(f'{IMG}transformer.resblocks.0.mlp.c_fc.weight')
    if mlp is not None and mlp.shape[0] != 4 * width:
        raise ValueError(f'MLP width {mlp.shape[0]} is not 4 x {width}; only CLIP\'s 4x MLP is supported')
    if hf_vision:
        if hf_vision.get('hidden_act', 'quick_gelu') != 'quick_gelu' or hf_vision.get('layer_norm_eps', 1e-5) != 1e-5:
            raise ValueError(f'vision tower with hidden_act={hf_vision.get("hidden_act")!r}, layer_norm_eps='
                             f'{hf_vision.get("layer_norm_eps")} is unsupported (CLIP: quick_gelu, 1e-5)')
        heads = hf_vision['num_attention_heads']
    else:
        heads = VISION_HEADS.get(width, max(width // 64, 1))
    arch = dict(width=width, layers=layers, heads=heads, patch_size=patch)
    img_size = grid * patch
    name = next((n for n, p in VIT_PRESETS.items()
                 if {**arch, 'img_size': img_size} == p), None)
    return dict(type='CLIPVisionTransformer', arch=name or arch, img_size=img_size,
                output_dim=state_dict[IMG + 'proj'].shape[1])


def _infer_resnet(state_dict: StateDict) -> dict:
    _require(state_dict, IMG + 'layer1.0.conv1.weight', IMG + 'attnpool.positional_embedding',
             IMG + 'attnpool.c_proj.weight')
    layers = tuple(_count(state_dict, re.escape(f'{IMG}layer{i}.') + r'(\d+)\.') for i in range(1, 5))
    width = state_dict[IMG + 'layer1.0.conv1.weight'].shape[0]
    grid = math.isqrt(state_dict[IMG + 'attnpool.positional_embedding'].shape[0] - 1)
    arch = dict(layers=layers, width=width)
    name = next((n for n, p in RN_PRESETS.items() if p == arch), None)
    return dict(type='ModifiedResNet', arch=name or arch, img_size=grid * 32,
                output_dim=state_dict[IMG + 'attnpool.c_proj.weight'].shape[0])


def _infer_bert(state_dict: StateDict, hf_text: Optional[dict]) -> dict:
    words = TXT + 'embeddings.word_embeddings.weight'
    _require(state_dict, words, TXT + 'embeddings.position_embeddings.weight',
             TXT + 'encoder.layer.0.intermediate.dense.weight')
    vocab_size, hidden = state_dict[words].shape
    arch = dict(
        hidden_size=hidden,
        num_hidden_layers=_count(state_dict, re.escape(TXT) + r'encoder\.layer\.(\d+)\.'),
        num_attention_heads=(hf_text or {}).get('num_attention_heads') or TEXT_HEADS.get(hidden, max(hidden // 64, 1)),
        intermediate_size=state_dict[TXT + 'encoder.layer.0.intermediate.dense.weight'].shape[0],
    )
    found = dict(max_position_embeddings=state_dict[TXT + 'embeddings.position_embeddings.weight'].shape[0],
                 type_vocab_size=state_dict.get(TXT + 'embeddings.token_type_embeddings.weight',
                                                torch.empty(2, 0)).shape[0],
                 layer_norm_eps=(hf_text or {}).get('layer_norm_eps', BERT_DEFAULTS['layer_norm_eps']),
                 hidden_act=(hf_text or {}).get('hidden_act', BERT_DEFAULTS['hidden_act']))
    arch.update({k: v for k, v in found.items() if v != BERT_DEFAULTS[k]})
    name = next((n for n, p in BERT_PRESETS.items() if p == arch), None)
    return dict(type='ChineseBertEncoder', arch=name or arch, vocab_size=vocab_size)
