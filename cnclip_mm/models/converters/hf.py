"""Hugging Face ``ChineseCLIPModel`` state dicts and configs <-> this project's layout.

HF splits the packed attention projection into ``q/k/v_proj`` (in that order) and stores both projections as
``nn.Linear`` weights, i.e. transposed relative to the official ``x @ proj`` matrices.
"""
import re
from typing import Dict

import torch

StateDict = Dict[str, torch.Tensor]

HF_VISION = 'vision_model.'
HF_TEXT = 'text_model.'
OWN_VISION = 'image_encoder.'
OWN_TEXT = 'text_encoder.bert.'

# Non-layer vision keys: HF name -> own name (``pre_layrnorm`` is HF's own spelling).
VISION_FIXED = {
    'embeddings.class_embedding': 'class_embedding',
    'embeddings.patch_embedding.weight': 'conv1.weight',
    'embeddings.position_embedding.weight': 'positional_embedding',
    'pre_layrnorm.weight': 'ln_pre.weight',
    'pre_layrnorm.bias': 'ln_pre.bias',
    'post_layernorm.weight': 'ln_post.weight',
    'post_layernorm.bias': 'ln_post.bias',
}
# Per-layer vision module names: HF -> own (q/k/v handled separately).
VISION_LAYER = {
    'self_attn.out_proj': 'attn.out_proj',
    'layer_norm1': 'ln_1',
    'layer_norm2': 'ln_2',
    'mlp.fc1': 'mlp.c_fc',
    'mlp.fc2': 'mlp.c_proj',
}
HF_LAYER_RE = re.compile(r'^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$')
OWN_LAYER_RE = re.compile(r'^transformer\.resblocks\.(\d+)\.(.+)$')
DROPPED = ('text_model.pooler.', )
DROPPED_SUFFIXES = ('.position_ids', '.token_type_ids')
RESNET_MARKERS = ('image_encoder.attnpool.', 'image_encoder.layer1.')


def hf_to_mm(state_dict: StateDict) -> StateDict:
    """Map a ``ChineseCLIPModel`` state dict to this project's names.

    Unknown keys pass through unchanged so that the strict loader reports them.
    """
    out, qkv = {}, {}
    for key, value in state_dict.items():
        if key.startswith(DROPPED) or key.endswith(DROPPED_SUFFIXES):
            continue
        if key.startswith(HF_TEXT):
            out[OWN_TEXT + key[len(HF_TEXT):]] = value
        elif key == 'visual_projection.weight':
            out[OWN_VISION + 'proj'] = value.t().contiguous()
        elif key == 'text_projection.weight':
            out['text_projection'] = value.t().contiguous()
        elif key.startswith(HF_VISION):
            out.update(_vision_key_to_mm(key[len(HF_VISION):], value, qkv, key))
        else:
            out[key] = value
    for (layer, kind), parts in sorted(qkv.items()):
        missing = [p for p in ('q', 'k', 'v') if p not in parts]
        if missing:
            names = ', '.join(f'{HF_VISION}encoder.layers.{layer}.self_attn.{p}_proj.{kind}' for p in missing)
            raise KeyError(f'HF state dict lacks {names} (needed to pack the attention projection)')
        packed = torch.cat([parts['q'], parts['k'], parts['v']], dim=0)
        out[f'{OWN_VISION}transformer.resblocks.{layer}.attn.in_proj_{kind}'] = packed
    return out


def _vision_key_to_mm(key: str, value: torch.Tensor, qkv: dict, full_key: str) -> StateDict:
    if key in VISION_FIXED:
        return {OWN_VISION + VISION_FIXED[key]: value}
    match = HF_LAYER_RE.match(key)
    if match is None:
        return {full_key: value}
    layer, module, kind = match.groups()
    if module in ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'):
        qkv.setdefault((int(layer), kind), {})[module[len('self_attn.')]] = value
        return {}
    if module not in VISION_LAYER:
        return {full_key: value}
    return {f'{OWN_VISION}transformer.resblocks.{layer}.{VISION_LAYER[module]}.{kind}': value}


def mm_to_hf(state_dict: StateDict) -> StateDict:
    """Map this project's state dict to ``ChineseCLIPModel`` names.

    Raises:
        ValueError: for a ResNet image tower, which HF's ChineseCLIPModel cannot represent.
    """
    if any(k.startswith(RESNET_MARKERS) for k in state_dict):
        raise ValueError('Hugging Face ChineseCLIPModel has no ResNet image tower; an RN50 model cannot be '
                         'exported to the HF format (keep the official or this project\'s format)')
    fixed_back = {v: k for k, v in VISION_FIXED.items()}
    layer_back = {v: k for k, v in VISION_LAYER.items()}
    out = {}
    for key, value in state_dict.items():
        if key.startswith(OWN_TEXT):
            out[HF_TEXT + key[len(OWN_TEXT):]] = value
        elif key == 'text_projection':
            out['text_projection.weight'] = value.t().contiguous()
        elif key == OWN_VISION + 'proj':
            out['visual_projection.weight'] = value.t().contiguous()
        elif key.startswith(OWN_VISION):
            out.update(_vision_key_to_hf(key[len(OWN_VISION):], value, fixed_back, layer_back, key))
        elif key == 'logit_scale':
            out[key] = value
        # anything else (e.g. preprocessor buffers) has no HF counterpart
    return out


def _vision_key_to_hf(key: str, value: torch.Tensor, fixed_back: dict, layer_back: dict,
                      full_key: str) -> StateDict:
    if key in fixed_back:
        return {HF_VISION + fixed_back[key]: value}
    match = OWN_LAYER_RE.match(key)
    if match is None:
        raise KeyError(f'{full_key} has no counterpart in Hugging Face ChineseCLIPModel')
    layer, rest = match.groups()
    head = f'{HF_VISION}encoder.layers.{layer}.'
    if rest in ('attn.in_proj_weight', 'attn.in_proj_bias'):
        kind = rest.rsplit('_', 1)[1]
        q, k, v = value.chunk(3, dim=0)
        return {f'{head}self_attn.{n}_proj.{kind}': t.contiguous() for n, t in zip('qkv', (q, k, v))}
    module, _, kind = rest.rpartition('.')
    if module not in layer_back:
        raise KeyError(f'{full_key} has no counterpart in Hugging Face ChineseCLIPModel')
    return {f'{head}{layer_back[module]}.{kind}': value}
