"""Helpers shared by the image towers."""
import math
from typing import Iterable, List, Union

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
