"""Helpers shared by the image towers."""
import math
from typing import Callable, Iterable, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn


def resize_pos_embed(pos_embed: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Bicubically resize a ``[1 + g*g, C]`` position table (leading class token) to ``num_tokens`` rows.

    Lets a checkpoint trained at one resolution run at another (e.g. 224 -> 336).
    """
    if pos_embed.shape[0] == num_tokens:
        return pos_embed
    old_grid = math.isqrt(pos_embed.shape[0] - 1)
    new_grid = math.isqrt(num_tokens - 1)
    if old_grid * old_grid + 1 != pos_embed.shape[0] or new_grid * new_grid + 1 != num_tokens:
        raise ValueError(f'cannot resize a position table of {pos_embed.shape[0]} rows to {num_tokens}: '
                         'both must be 1 + a square number')
    cls_pos, grid_pos = pos_embed[:1], pos_embed[1:]
    grid_pos = grid_pos.reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2).float()
    grid_pos = F.interpolate(grid_pos, size=(new_grid, new_grid), mode='bicubic', align_corners=False)
    grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(new_grid * new_grid, -1).to(pos_embed.dtype)
    return torch.cat([cls_pos, grid_pos], dim=0)


def written_out_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask=None,
                          drop: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Scaled dot-product attention as two matmuls and a softmax (what SDPA's math path computes).

    ``key_mask``: bool, True where a key may be attended; ``drop``: applied to the probabilities.
    """
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(q.shape[-1] ** -0.5)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, float('-inf'))
    probs = scores.softmax(-1)
    return torch.matmul(probs if drop is None else drop(probs), v)


def attend_through_inputs(q: torch.Tensor, x: torch.Tensor, w_k: torch.Tensor, b_k: torch.Tensor,
                          w_v: torch.Tensor, b_v: torch.Tensor, heads: int, key_mask: Optional[torch.Tensor] = None,
                          drop: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Attention of a few projected queries over every token, without projecting the tokens to keys and
    values: ``q`` ``[N, Q, C]``, ``x`` ``[N, L, C]`` (the inputs keys and values would be made from),
    ``w_k``, ``b_k``, ``w_v``, ``b_v`` as in Linears; ``key_mask`` ``[N, L]`` bool, True where a
    key may be attended; ``drop``: applied to the probabilities. Returns ``[N, Q, C]``.

    Per head, ``q . (W_k x + b_k) = (W_k^T q) . x + q . b_k`` (the last term is the same for every key,
    so its gradient is zero as in the full form; it stays in the graph, where DDP expects every
    parameter), and ``sum p (W_v x + b_v) = W_v (sum p x) + (sum p) b_v``. So the keys and
    values of all L tokens (two ``[L, C] x [C, C]`` products, three times that with gradients) become
    products of the Q queries, for the last layer of a tower that reads only its first token. The same
    attention, summed in another order.
    """
    n, length, width = x.shape
    queries = q.shape[1]
    dim = width // heads
    q = q.reshape(n, queries, heads, dim).permute(2, 0, 1, 3).reshape(heads, n * queries, dim)
    q_in = torch.bmm(q, w_k.view(heads, dim, width))  # [heads, N * Q, C]
    q_in = q_in.view(heads, n, queries, width).transpose(0, 1).reshape(n, heads * queries, width)
    q_b = torch.bmm(q, b_k.view(heads, dim, 1)).view(heads, n, queries).transpose(0, 1).reshape(n, -1, 1)
    scores = torch.baddbmm(q_b, q_in, x.transpose(1, 2)).mul_(dim ** -0.5)  # [N, heads * Q, L]
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, :], float('-inf'))
    probs = scores.softmax(-1)
    if drop is not None:
        probs = drop(probs)
    mixed = torch.bmm(probs, x).view(n, heads, queries, width).transpose(0, 1).reshape(heads, -1, width)
    out = torch.bmm(mixed, w_v.view(heads, dim, width).transpose(1, 2))  # [heads, N * Q, dim]
    if drop is None:  # the probabilities sum to 1
        out = out + b_v.view(heads, 1, dim)
    else:
        kept = probs.sum(-1).view(n, heads, queries).permute(1, 0, 2).reshape(heads, -1, 1)
        out = out + kept * b_v.view(heads, 1, dim)
    return out.view(heads, n, queries, dim).permute(1, 2, 0, 3).reshape(n, queries, width)


def set_requires_grad(items: Iterable, flag: bool) -> None:
    """Set ``requires_grad`` on modules and bare parameters alike."""
    for item in items:
        params = [item] if isinstance(item, nn.Parameter) else item.parameters()
        for param in params:
            param.requires_grad_(flag)


class LockableTower(nn.Module):
    """Mixin: locking by parameter groups, with BatchNorm statistics optionally frozen.

    Subclasses implement ``lock_groups()`` returning groups (lists of modules / parameters) from the input
    side to the output side; ``lock(unlocked_groups=N)`` freezes all but the last N.
    """

    _freeze_bn: bool = False

    def lock_groups(self) -> List[list]:
        raise NotImplementedError

    def lock(self, unlocked_groups: int = 0, freeze_bn_stats: bool = True) -> None:
        groups = self.lock_groups()
        if not 0 <= unlocked_groups <= len(groups):
            raise ValueError(f'unlocked_groups must be in [0, {len(groups)}], got {unlocked_groups}')
        set_requires_grad(self.parameters(), True)
        for group in groups[:len(groups) - unlocked_groups]:
            set_requires_grad(group, False)
        self._freeze_bn = freeze_bn_stats
        self.train(self.training)

    def unlock(self) -> None:
        set_requires_grad(self.parameters(), True)
        self._freeze_bn = False
        self.train(self.training)

    @property
    def locked(self) -> bool:
        return any(not p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        if self._freeze_bn:
            # BatchNorm of frozen layers stays in eval so its running statistics never move.
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                        p.requires_grad for p in module.parameters()):
                    module.eval()
        return self


def resolve_arch(zoo: dict, arch: Union[str, dict], required: tuple) -> dict:
    """A preset from ``zoo`` by name, or a custom dict checked for ``required`` keys."""
    if isinstance(arch, str):
        if arch not in zoo:
            raise KeyError(f'unknown arch {arch!r}; presets: {sorted(zoo)}')
        return dict(zoo[arch])
    missing = [key for key in required if key not in arch]
    if missing:
        raise KeyError(f'custom arch {arch} lacks keys {missing}')
    return dict(arch)
