"""mmpretrain ``ChineseCLIP`` checkpoints <-> this project's layout.

mmpretrain keeps the image tower under ``vision_backbone.`` (its generic ViT names, or the official names for
RN50), the ViT projection as a top-level ``vision_projection``, and the BERT under ``text_backbone.`` with the
transformers names.
"""
import re
from typing import Dict

import torch

StateDict = Dict[str, torch.Tensor]

MMP_VISION = 'vision_backbone.'
MMP_TEXT = 'text_backbone.'
OWN_VISION = 'image_encoder.'
OWN_TEXT = 'text_encoder.bert.'

# Non-layer ViT keys: mmpretrain -> own. ``ln1`` at the top level is the final norm.
VIT_FIXED = {
    'patch_embed.projection.weight': 'conv1.weight',
    'pre_norm.weight': 'ln_pre.weight',
    'pre_norm.bias': 'ln_pre.bias',
    'ln1.weight': 'ln_post.weight',
    'ln1.bias': 'ln_post.bias',
}
VIT_LAYER = {
    'ln1': 'ln_1',
    'ln2': 'ln_2',
    'attn.proj': 'attn.out_proj',
    'ffn.layers.0.0': 'mlp.c_fc',
    'ffn.layers.1': 'mlp.c_proj',
}
MMP_LAYER_RE = re.compile(r'^layers\.(\d+)\.(.+)\.(weight|bias)$')
OWN_LAYER_RE = re.compile(r'^transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)$')
PATCH_BIAS = 'patch_embed.projection.bias'


def is_vit(state_dict: StateDict, prefix: str) -> bool:
    return any(k.startswith(prefix + ('layers.' if prefix == MMP_VISION else 'transformer.'))
               for k in state_dict)


def mmpretrain_to_mm(state_dict: StateDict) -> StateDict:
    """Map an mmpretrain Chinese CLIP state dict to this project's names (unknown keys pass through)."""
    vit = is_vit(state_dict, MMP_VISION)
    out = {}
    for key, value in state_dict.items():
        if key.startswith(MMP_TEXT):
            out[OWN_TEXT + key[len(MMP_TEXT):]] = value
        elif key == 'vision_projection':
            out[OWN_VISION + 'proj'] = value
        elif key.startswith(MMP_VISION) and vit:
            out.update(_vit_key_to_mm(key[len(MMP_VISION):], value, key))
        elif key.startswith(MMP_VISION):  # RN50: official names under another prefix
            out[OWN_VISION + key[len(MMP_VISION):]] = value
        else:
            out[key] = value
    return out


def _vit_key_to_mm(key: str, value: torch.Tensor, full_key: str) -> StateDict:
    if key in VIT_FIXED:
        return {OWN_VISION + VIT_FIXED[key]: value}
    if key == 'cls_token':  # [1, 1, C] -> [C]
        return {OWN_VISION + 'class_embedding': value.reshape(-1)}
    if key == 'pos_embed':  # [1, L, C] -> [L, C]
        return {OWN_VISION + 'positional_embedding': value.reshape(value.shape[-2], value.shape[-1])}
    if key == PATCH_BIAS:
        # mmpretrain's default patch conv has a bias that the CLIP tower lacks; it is zero in converted weights.
        if torch.count_nonzero(value):
            raise ValueError(f'{full_key} is non-zero; the CLIP ViT patch embedding has no bias')
        return {}
    match = MMP_LAYER_RE.match(key)
    if match is None:
        return {full_key: value}
    layer, module, kind = match.groups()
    base = f'{OWN_VISION}transformer.resblocks.{layer}.'
    if module == 'attn.qkv':
        return {f'{base}attn.in_proj_{kind}': value}
    if module not in VIT_LAYER:
        return {full_key: value}
    return {f'{base}{VIT_LAYER[module]}.{kind}': value}


def mm_to_mmpretrain(state_dict: StateDict) -> StateDict:
    """Map this project's names to mmpretrain's (RN50 keeps the official tower names)."""
    vit = is_vit(state_dict, OWN_VISION)
    fixed_back = {v: k for k, v in VIT_FIXED.items()}
    layer_back = {v: k for k, v in VIT_LAYER.items()}
    out = {}
    for key, value in state_dict.items():
        if key.startswith(OWN_TEXT):
            out[MMP_TEXT + key[len(OWN_TEXT):]] = value
        elif key == OWN_VISION + 'proj':
            out['vision_projection'] = value
        elif key.startswith(OWN_VISION) and vit:
            out[MMP_VISION + _vit_key_to_mmp(key[len(OWN_VISION):], fixed_back, layer_back, key)] = (
                _vit_value_to_mmp(key[len(OWN_VISION):], value))
        elif key.startswith(OWN_VISION):
            out[MMP_VISION + key[len(OWN_VISION):]] = value
        elif key in ('text_projection', 'logit_scale'):
            out[key] = value
    return out


def _vit_key_to_mmp(key: str, fixed_back: dict, layer_back: dict, full_key: str) -> str:
    if key in fixed_back:
        return fixed_back[key]
    if key == 'class_embedding':
        return 'cls_token'
    if key == 'positional_embedding':
        return 'pos_embed'
    if key.startswith('transformer.resblocks.') and '.attn.in_proj_' in key:
        return f'layers.{key.split(".")[2]}.attn.qkv.{key.rsplit("_", 1)[1]}'
    match = OWN_LAYER_RE.match(key)
    if match is not None and match.group(2) in layer_back:
        layer, module, kind = match.groups()
        return f'layers.{layer}.{layer_back[module]}.{kind}'
    raise KeyError(f'{full_key} has no counterpart in mmpretrain\'s ChineseCLIP')


def _vit_value_to_mmp(key: str, value: torch.Tensor) -> torch.Tensor:
    if key == 'class_embedding':
        return value.reshape(1, 1, -1)
    if key == 'positional_embedding':
        return value.unsqueeze(0)
    return value
