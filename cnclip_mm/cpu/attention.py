"""Scaled dot-product attention written out (two matmuls and a softmax), for two cases.

With dropout (the text tower in training) torch's CPU SDPA writes the math out itself and draws its
mask with torch's sampler, whose masks depend on the CPU's vendor; here the probabilities go through
:func:`cnclip_mm.cpu.dropout.dropout` instead, so the dropout path's masks cover attention too.

Without dropout, over at most :data:`SHORT_KEYS` keys: torch's CPU flash kernel pays for its blocking
and its threads more than for the math there (the demo's 17-token ViT at 2 threads: 3.1 ms forward and
backward against 1.2 written out, benchmarks/cpu_speed.py measures the path). Written out, the
probabilities ``[N, heads, L, L]`` stay for backward, which at that length is about one activation.
"""
from typing import Optional

import torch

from .dropout import dropout

# Up to this many keys the written-out form was faster at 2 threads (52 keys 1.5x, 100 keys 1.6x);
# at ViT-B/16's 197 the two were even, and its saved probabilities grow with the square.
SHORT_KEYS = 100


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
