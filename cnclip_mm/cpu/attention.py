"""Scaled dot-product attention written out (two matmuls and a softmax) where that is faster on CPU.

PyTorch's CPU SDPA runs a flash-attention kernel whose per-block overhead dominates short sequences
(the demo's 17 tokens: forward + backward 2.2 instead of 1.0 ms a layer); the two forms were even at
~200 keys, and the bound stays lower because the written-out form keeps the probabilities
``[N, heads, L, L]`` for backward. With dropout on the probabilities (the text tower in training)
torch's CPU SDPA writes the math out itself and draws its mask with torch's serial sampler; here
the probabilities go through :func:`cnclip_mm.cpu.dropout.dropout` instead.
"""
from typing import Optional

import torch

from .dropout import dropout

# Up to this many keys attention without dropout is written out (benchmarks/cpu_speed.py measures it).
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
