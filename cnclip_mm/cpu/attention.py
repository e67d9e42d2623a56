"""Scaled dot-product attention with dropout on the probabilities, written out (two matmuls and a softmax).

With dropout (the text tower in training) torch's CPU SDPA writes the math out itself and draws its
mask with torch's sampler, whose masks depend on the CPU's vendor; here the probabilities go through
:func:`cnclip_mm.cpu.dropout.dropout` instead, so the dropout path's masks cover attention too.
"""
from typing import Optional

import torch

from .dropout import dropout


def written_out(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0,
                scale: Optional[float] = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` (no causal mask, no grouped heads) as its math computes it.

    ``attn_mask``: bool (True where a key may be attended) or additive floats, broadcast to the
    scores. A row with every key masked gives zeros, as SDPA's math path does.
    """
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scale)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float('-inf'))
        probs = torch._safe_softmax(scores, -1)
    else:
        if attn_mask is not None:
            scores = scores + attn_mask
        probs = scores.softmax(-1)
    if dropout_p > 0:
        probs = dropout(probs, dropout_p)
    return torch.matmul(probs, value)
