"""Name a model's architecture, so that a checkpoint of another variant is reported as such.

A strict load of, say, a tiny checkpoint into ViT-B/16 otherwise fails with hundreds of key and shape
mismatches; :func:`explain_mismatch` says "this checkpoint is X, the config builds Y" instead.
"""
from typing import Mapping, Optional, Tuple

from cnclip_mm.models.backbones.modified_resnet import ModifiedResNet
from cnclip_mm.models.backbones.vit import CLIPVisionTransformer
from cnclip_mm.models.text_encoders.bert import ChineseBertEncoder

_IMAGE = {'CLIPVisionTransformer': (CLIPVisionTransformer.arch_zoo, ('width', 'layers', 'patch_size')),
          'ModifiedResNet': (ModifiedResNet.arch_zoo, ('layers', 'width'))}
_TEXT_KEYS = ('hidden_size', 'num_hidden_layers', 'intermediate_size')


def _dims(arch, zoo: Mapping, keys) -> Tuple[Optional[str], tuple]:
    spec = zoo.get(arch, {}) if isinstance(arch, str) else dict(arch or {})
    dims = tuple(tuple(spec[k]) if isinstance(spec.get(k), list) else spec.get(k) for k in keys)
    name = arch if isinstance(arch, str) else next(
        (n for n, p in zoo.items() if tuple(p.get(k) for k in keys) == dims), None)
    return name, dims


def describe(model_cfg: Mapping) -> Tuple[str, tuple]:
    """``(human-readable architecture, comparable key)`` of a ``ChineseCLIP`` model config."""
    image, text = model_cfg.get('image_encoder') or {}, model_cfg.get('text_encoder') or {}
    zoo, keys = _IMAGE.get(image.get('type'), ({}, ()))
    img_name, img_dims = _dims(image.get('arch'), zoo, keys)
    img_size = image.get('img_size') or zoo.get(image.get('arch'), {}).get('img_size', 224)
    txt_name, txt_dims = _dims(text.get('arch', 'base'), ChineseBertEncoder.arch_zoo, _TEXT_KEYS)
    embed = model_cfg.get('embed_dim')
    img_text = img_name or ', '.join(f'{k}={v}' for k, v in zip(keys, img_dims))
    txt_text = txt_name or ', '.join(f'{k}={v}' for k, v in zip(_TEXT_KEYS, txt_dims))
    readable = (f'{image.get("type")} {img_text} at {img_size}px + text tower {txt_text}, embed_dim {embed}')
    return readable, (image.get('type'), img_dims, img_size, txt_dims, embed)


def explain_mismatch(model_cfg: Mapping, checkpoint: str) -> Optional[str]:
    """A message naming both architectures when ``checkpoint`` is another variant than ``model_cfg``."""
    from cnclip_mm.models.converters import load_state_dict_any
    try:
        state_dict, fmt, extra = load_state_dict_any(checkpoint)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint keeps the loader's own error
        return None
    return explain_state_dict_mismatch(model_cfg, state_dict, fmt, extra, checkpoint)


def explain_state_dict_mismatch(model_cfg: Mapping, state_dict: Mapping, fmt: str, extra: Mapping,
                                checkpoint: str) -> Optional[str]:
    """:func:`explain_mismatch` for a state dict already loaded (as ``load_state_dict_any`` returns it)."""
    from cnclip_mm.models.converters import infer_model_cfg
    try:
        stored = infer_model_cfg(state_dict, fmt, extra)
    except Exception:  # noqa: BLE001 - shapes that name no architecture keep the loader's own error
        return None
    ours, ours_key = describe(model_cfg)
    theirs, theirs_key = describe(stored)
    if ours_key == theirs_key:
        return None
    return (f'{checkpoint} is a {theirs} model, but the config builds a {ours} model: use the config of the '
            "checkpoint's variant (e.g. configs/*_vit-l-14.py for ViT-L/14) or a checkpoint of this one")
