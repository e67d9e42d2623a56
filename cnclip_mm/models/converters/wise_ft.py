"""WiSE-FT (Wortsman et al., 2022): interpolate zero-shot and fine-tuned weights of one architecture.

``theta(alpha) = (1 - alpha) * theta_zero_shot + alpha * theta_fine_tuned``; fine-tuning often costs
zero-shot ability, and an intermediate ``alpha`` usually keeps most of both.
"""
import os
from typing import Dict, Optional, Tuple

import torch

from .infer import infer_model_cfg
from .loading import load_state_dict_any
from .stored_config import plain_model_cfg, stored_model_cfg

StateDict = Dict[str, torch.Tensor]


def interpolate_state_dicts(zero_shot: StateDict, fine_tuned: StateDict, alpha: float) -> StateDict:
    """``(1 - alpha) * zero_shot + alpha * fine_tuned`` key by key.

    Alpha 0 and 1 return exact copies of the inputs; non-float tensors (counters) must be equal.

    Raises:
        ValueError: when the keys or shapes differ (different architectures), naming them.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'WiSE-FT: alpha must be in [0, 1], got {alpha}')
    only_zs = sorted(set(zero_shot) - set(fine_tuned))
    only_ft = sorted(set(fine_tuned) - set(zero_shot))
    shapes = sorted(f'{k}: {tuple(zero_shot[k].shape)} vs {tuple(fine_tuned[k].shape)}'
                    for k in set(zero_shot) & set(fine_tuned) if zero_shot[k].shape != fine_tuned[k].shape)
    if only_zs or only_ft or shapes:
        parts = [f'{title} ({len(items)}): {", ".join(items[:8])}{" ..." if len(items) > 8 else ""}'
                 for title, items in (('only in the zero-shot checkpoint', only_zs),
                                      ('only in the fine-tuned checkpoint', only_ft),
                                      ('shape mismatches', shapes)) if items]
        raise ValueError('WiSE-FT needs two checkpoints of the same architecture; ' + '; '.join(parts))
    out = {}
    for key, zs in zero_shot.items():
        ft = fine_tuned[key]
        if alpha == 0.0:
            out[key] = zs.clone()
        elif alpha == 1.0:
            out[key] = ft.clone()
        elif zs.is_floating_point():
            out[key] = ((1.0 - alpha) * zs.double() + alpha * ft.double()).to(zs.dtype)
        elif torch.equal(zs, ft):
            out[key] = zs.clone()
        else:
            raise ValueError(f'WiSE-FT: non-float tensor {key!r} differs between the checkpoints')
    return out


def load_pair(zero_shot: str, fine_tuned: str) -> Tuple[StateDict, StateDict, dict]:
    """Both checkpoints (any supported format) in this project's layout, and the model config (plain data:
    the zero-shot checkpoint's stored one, read without executing anything, else inferred from its keys)."""
    zs, zs_fmt, zs_extra = load_state_dict_any(zero_shot)
    ft, _, _ = load_state_dict_any(fine_tuned)
    model_cfg = stored_model_cfg(zs_extra.get('meta'), zero_shot) or infer_model_cfg(zs, zs_fmt, zs_extra)
    return zs, ft, plain_model_cfg(model_cfg)


def save_interpolated(state_dict: StateDict, dst: str, model_cfg: Optional[dict], alpha: float,
                      sources: Optional[Tuple[str, str]] = None) -> str:
    """Write an mmengine-style checkpoint (``state_dict`` + ``meta``) that ``init_model`` loads."""
    meta = dict(model_cfg=model_cfg, wise_ft=dict(alpha=alpha, zero_shot=sources and sources[0],
                                                  fine_tuned=sources and sources[1]))
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), dst)
    return dst
