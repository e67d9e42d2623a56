"""LoRA adapters on the towers through peft, with checkpoint keys that stay the official ones.

``ChineseCLIP(adapters=...)`` calls :func:`apply_adapters` once its towers exist. Each tower gets one
``peft.LoraConfig`` injected with ``peft.inject_adapter_in_model``: every named ``nn.Linear`` (and, through
peft's ``target_parameters``, the ViT's packed ``attn.in_proj_weight``) is wrapped by a peft layer that
holds the frozen original as ``base_layer``. State-dict hooks on those layers hide ``base_layer.`` from
the saved keys, so a model with adapters saves and loads the official layout plus the ``lora_*`` keys:
base checkpoints of every format load into it unchanged, and :func:`merge_adapters` gives back a plain
model with the same keys.
"""

from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

BASE = 'base_layer.'
ADAPTER_MARK = 'lora_'  # peft's LoRA parameters live in modules named lora_A / lora_B / ...
TOWERS = {'image': 'image_encoder', 'text': 'text_encoder'}
TYPES = ('LoRA',)
# Renamed from peft's LoraConfig so that the config reads like the other OpenMMLab keys.
ALIASES = {'alpha': 'lora_alpha', 'dropout': 'lora_dropout'}


def is_adapter_key(name: str) -> bool:
    """Whether a parameter / state-dict key belongs to an adapter (a ``lora_*`` module of peft)."""
    return any(part.startswith(ADAPTER_MARK) for part in name.split('.'))


def lora_config(cfg: dict, where: str):
    """A ``peft.LoraConfig`` from one tower's block of ``model.adapters``.

    Args:
        cfg: ``dict(type='LoRA', target_modules=[...], r=8, alpha=16, dropout=0.05, ...)``; ``alpha`` and
            ``dropout`` stand for peft's ``lora_alpha`` / ``lora_dropout``, any other key is a
            ``LoraConfig`` field (``target_parameters``, ``use_rslora``, ...).
        where: the config path of ``cfg``, named in errors.

    Raises:
        ValueError: an unknown type or field, or no targets.
    """
    from peft import LoraConfig

    cfg = dict(cfg)
    kind = cfg.pop('type', 'LoRA')
    if kind not in TYPES:
        raise ValueError(f'{where}.type: {kind!r} is not supported; choose from {list(TYPES)}')
    for short, long in ALIASES.items():
        if short in cfg:
            if long in cfg:
                raise ValueError(f'{where}: give {short!r} or {long!r}, not both')
            cfg[long] = cfg.pop(short)
    if not cfg.get('target_modules') and not cfg.get('target_parameters'):
        raise ValueError(
            f"{where}: name the layers to adapt in target_modules (e.g. ['mlp.c_fc']) "
            'or target_parameters'
        )
    cfg.setdefault('target_modules', [])
    for key in ('target_modules', 'target_parameters'):
        if isinstance(cfg.get(key), tuple):
            cfg[key] = list(cfg[key])
    try:
        return LoraConfig(**cfg)
    except TypeError as err:
        raise ValueError(f"{where}: {err} (fields are peft.LoraConfig's)") from None


def apply_adapters(model: nn.Module, adapters: dict) -> List[str]:
    """Inject LoRA into the towers named in ``adapters`` and freeze every other parameter.

    Args:
        model: a ``ChineseCLIP``.
        adapters: ``dict(image=dict(...), text=dict(...), trainable=['logit_scale'])``; either tower may be
            left out (its weights stay frozen), ``trainable`` lists top-level parameters that train too.

    Returns:
        The names of the wrapped modules.
    """
    from peft import inject_adapter_in_model

    unknown = set(adapters) - set(TOWERS) - {'trainable'}
    if unknown:
        raise ValueError(
            f'model.adapters: unknown keys {sorted(unknown)}; expected image, text, trainable'
        )
    if not any(adapters.get(tower) for tower in TOWERS):
        raise ValueError(
            'model.adapters names no tower: give image=dict(...) and/or text=dict(...)'
        )
    names = set(dict(model.named_parameters()))
    for name in adapters.get('trainable') or ():
        if name not in names:
            raise ValueError(f'model.adapters.trainable: {name!r} is not a parameter of the model')
    wrapped = []
    for tower, attr in TOWERS.items():
        if not adapters.get(tower):
            continue
        where = f'model.adapters.{tower}'
        module = getattr(model, attr)
        try:
            inject_adapter_in_model(lora_config(adapters[tower], where), module)
        except ValueError as err:
            raise ValueError(f'{where}: {err}') from None
        for name, layer in module.named_modules():
            if _is_peft_layer(layer):
                layer.register_state_dict_post_hook(_hide_base_layer)
                layer.register_load_state_dict_pre_hook(_find_base_layer)
                wrapped.append(f'{attr}.{name}')
    model.adapter_trainable = tuple(adapters.get('trainable') or ())
    freeze_base(model)
    return wrapped


def freeze_base(model: nn.Module) -> None:
    """Freeze every parameter except the adapters and ``model.adapter_trainable``.

    Never unfreezes: an adapter of a locked tower (or locked layer group) stays frozen.
    """
    keep = set(getattr(model, 'adapter_trainable', ()))
    for name, param in model.named_parameters():
        if not (is_adapter_key(name) or name in keep):
            param.requires_grad_(False)


def has_adapters(model: nn.Module) -> bool:
    return any(_is_peft_layer(m) for m in model.modules())


def adapter_state_dict(
    model: nn.Module, state_dict: Optional[Dict[str, torch.Tensor]] = None
) -> Dict[str, torch.Tensor]:
    """The entries of ``state_dict`` (default: the model's) that adapter training changes: the adapters
    and ``model.adapter_trainable``."""
    state_dict = model.state_dict() if state_dict is None else state_dict
    keep = set(getattr(model, 'adapter_trainable', ()))
    return {k: v for k, v in state_dict.items() if is_adapter_key(k) or k in keep}


@torch.no_grad()
def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight (``W + alpha/r * B A``, peft's ``merge``) and put the base
    layers back in place: ``model`` becomes a plain one with the same state-dict keys minus ``lora_*``.
    Every parameter is trainable again, as in a model built without adapters."""
    # Innermost first: a wrapper's base layer may hold another wrapper (ViT attention: in_proj and out_proj).
    for name, module in reversed(list(model.named_modules())):
        if _is_peft_layer(module):
            module.merge(safe_merge=True)
            model.set_submodule(name, module.get_base_layer())
    for param in model.parameters():
        param.requires_grad_(True)
    model.adapter_trainable = ()
    return model


def count_parameters(model: nn.Module, params: Optional[Iterable[nn.Parameter]] = None) -> int:
    return sum(p.numel() for p in (model.parameters() if params is None else params))


def _is_peft_layer(module: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _hide_base_layer(module, state_dict, prefix, local_metadata) -> None:
    # The wrapper's keys are the tail of ``state_dict`` here; re-adding them renamed keeps their order.
    inner = prefix + BASE
    tail = [k for k in state_dict if k.startswith(prefix)]
    for key in tail:
        value = state_dict.pop(key)
        state_dict[prefix + key[len(inner) :] if key.startswith(inner) else key] = value


def _find_base_layer(module, state_dict, prefix, *args) -> None:
    own = set(module._modules) | set(module._parameters) | set(module._buffers)
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        if rest.split('.', 1)[0] not in own:
            state_dict[prefix + BASE + rest] = state_dict.pop(key)
