"""OpenAI-CLIP-style Vision Transformer, parameter names identical to the official ``visual.*`` keys.

Plain PyTorch: every layer is called as a module, so forward hooks, PEFT/LoRA, ``quantize_dynamic``,
FSDP wrap policies and ``torch.compile(fullgraph=True)`` see and wrap it.
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from cnclip_mm.registry import MODELS

from ..checkpointing import checkpointed
from .utils import LockableTower, resize_pos_embed, resolve_arch


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x * 1.702) / 1.702


class _QuickGELUFunction(torch.autograd.Function):
    """``silu(1.702 x) / 1.702`` with the scales folded out of the backward, which is SiLU's own:
    ``d/dx = silu'(1.702 x)``, one ``silu_backward`` after rescaling the saved input. Autograd over the
    three forward ops would add a division and a product, each a pass over the MLP's widest tensor and
    a fresh buffer."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _quick_gelu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return torch.ops.aten.silu_backward(grad, x * 1.702)


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the GELU approximation OpenAI CLIP was trained with, computed as
    ``silu(1.702 x) / 1.702``: the same function (float rounding), with SiLU's fused kernel each way
    instead of a sigmoid and two products (:class:`_QuickGELUFunction`; the same three ops under
    ``torch.jit.trace``, whose archives cannot hold a Python Function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            return _quick_gelu(x)
        return _QuickGELUFunction.apply(x)


class QuickGELUMLP(nn.Module):
    """``c_proj(QuickGELU(c_fc(x)))``, OpenAI CLIP's 4x MLP (keys ``c_fc.*``, ``c_proj.*``)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class PackedSelfAttention(nn.Module):
    """Multi-head self-attention with one packed q/k/v projection, as ``nn.MultiheadAttention``.

    ``in_proj_weight`` / ``in_proj_bias`` are this module's own parameters (the official keys), applied
    here with ``F.linear``; ``out_proj`` is an ``nn.Linear`` called as a module. Attention itself is
    ``F.scaled_dot_product_attention``, so each device picks its fused kernel.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f'width {width} is not divisible by heads {heads}')
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, queries: Optional[int] = None) -> torch.Tensor:
        """Attend from every token of ``x`` ``[N, L, C]``, or from its first ``queries`` tokens only
        (keys and values: all tokens). Returns ``[N, L or queries, C]``."""
        width = x.shape[-1]
        if queries is None:
            q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_kv = self.in_proj_weight.split([width, 2 * width])
            b_q, b_kv = self.in_proj_bias.split([width, 2 * width])
            q = F.linear(x[:, :queries], w_q, b_q)
            k, v = F.linear(x, w_kv, b_kv).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: attention then a 4x QuickGELU MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = PackedSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = QuickGELUMLP(width, width * 4)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)

    def forward(self, x: torch.Tensor, queries: Optional[int] = None) -> torch.Tensor:
        """All tokens out, or only the first ``queries`` (what the last block owes the class token)."""
        out = self.attn(self.ln_1(x), queries)
        x = x if queries is None else x[:, :queries]
        x = x + out
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of residual blocks, each optionally recomputed in backward (gradient checkpointing)."""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, queries: Optional[int] = None) -> torch.Tensor:
        """Run the blocks; with ``queries`` the last block computes only the first ``queries`` tokens."""
        last = len(self.resblocks) - 1
        for i, block in enumerate(self.resblocks):
            rows = queries if i == last else None
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpointed(block, x, rows)
            else:
                x = block(x, rows)
        return x


@MODELS.register_module()
class CLIPVisionTransformer(LockableTower, BaseModule):
    """The Chinese CLIP ViT image tower (OpenAI CLIP architecture).

    Args:
        arch: a preset name (``'b-16'``, ``'l-14'``, ``'l-14-336'``, ``'h-14'``) or a dict with ``width``,
            ``layers``, ``heads``, ``patch_size`` (and optionally ``img_size``, ``output_dim``).
        img_size: input resolution; defaults to the preset's. Checkpoints of another resolution load
            with their position embedding resized.
        output_dim: width of the projected feature; defaults to the preset's embed dim.
        grad_checkpointing: recompute each block in backward to save memory.
        mask_ratio: FLIP patch masking (Li et al. 2023): in training mode, the share of patch tokens
            dropped per image after the positional embeddings are added (0.5 keeps a random half; the
            class token is always kept). Evaluation always sees every token. 0 (default): off.
    """

    arch_zoo = {
        'b-16': dict(width=768, layers=12, heads=12, patch_size=16, img_size=224, output_dim=512),
        'l-14': dict(width=1024, layers=24, heads=16, patch_size=14, img_size=224, output_dim=768),
        'l-14-336': dict(width=1024, layers=24, heads=16, patch_size=14, img_size=336, output_dim=768),
        'h-14': dict(width=1280, layers=32, heads=16, patch_size=14, img_size=224, output_dim=1024),
    }

    def __init__(self, arch: Union[str, dict] = 'b-16', img_size: Optional[int] = None,
                 output_dim: Optional[int] = None, grad_checkpointing: bool = False,
                 mask_ratio: float = 0.0, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        cfg = resolve_arch(self.arch_zoo, arch, ('width', 'layers', 'heads', 'patch_size'))
        self.width, self.layers, self.heads = cfg['width'], cfg['layers'], cfg['heads']
        self.patch_size = cfg['patch_size']
        self.img_size = img_size or cfg.get('img_size', 224)
        self.output_dim = output_dim or cfg.get('output_dim', 512)
        if self.img_size % self.patch_size:
            raise ValueError(f'img_size {self.img_size} is not a multiple of patch_size {self.patch_size}')
        grid = self.img_size // self.patch_size
        scale = self.width ** -0.5

        self.conv1 = nn.Conv2d(3, self.width, self.patch_size, stride=self.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(self.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, self.width))
        self.ln_pre = nn.LayerNorm(self.width, eps=1e-5)
        self.transformer = Transformer(self.width, self.layers, self.heads)
        self.ln_post = nn.LayerNorm(self.width, eps=1e-5)
        self.proj = nn.Parameter(scale * torch.randn(self.width, self.output_dim))
        self._init_blocks()
        self.set_grad_checkpointing(grad_checkpointing)
        self.set_mask_ratio(mask_ratio)

    def _init_blocks(self) -> None:
        # OpenAI CLIP's initialisation, so a tower trained from scratch starts where theirs did.
        attn_std = self.width ** -0.5
        proj_std = attn_std * (2 * self.layers) ** -0.5
        fc_std = (2 * self.width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.out_proj.bias)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.grad_checkpointing = enable

    @property
    def grad_checkpointing(self) -> bool:
        return self.transformer.grad_checkpointing

    def set_mask_ratio(self, ratio: float) -> None:
        """Share of patch tokens dropped in training (FLIP); 0 turns masking off."""
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f'CLIPVisionTransformer: mask_ratio must be in [0, 1), got {ratio}')
        self.mask_ratio = float(ratio)

    def kept_patches(self, num_patches: int) -> int:
        """How many of ``num_patches`` patch tokens a masked training forward keeps (at least one)."""
        return max(1, round(num_patches * (1.0 - self.mask_ratio)))

    def mask_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Keep the class token and a random subset of the patch tokens of each image of ``x`` ``[N, L, C]``.

        The kept count comes from the shape alone, and the subset from ranking uniform noise drawn
        on the device's default generator (the one dropout uses: seeded by the run, saved by
        ``RNGStateHook``, replayed by the feature cache), so nothing is read back to the host.
        """
        patches = x[:, 1:]
        keep = self.kept_patches(patches.shape[1])
        noise = torch.rand(patches.shape[:2], device=x.device)
        index = noise.topk(keep, dim=1).indices.unsqueeze(-1).expand(-1, -1, patches.shape[2])
        return torch.cat([x[:, :1], patches.gather(1, index)], dim=1)

    def lock_groups(self) -> list:
        stem = [self.conv1, self.class_embedding, self.positional_embedding, self.ln_pre]
        return [stem, *[[block] for block in self.transformer.resblocks], [self.ln_post, self.proj]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)  # [N, grid*grid, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = self.positional_embedding
        # An exported graph has the fixed image size of its meta.json: tracing never takes the resize.
        if not torch.jit.is_tracing() and pos.shape[0] != x.shape[1]:
            pos = resize_pos_embed(pos, x.shape[1])
        x = x + pos.to(x.dtype)
        if self.training and self.mask_ratio > 0:
            x = self.mask_patches(x)  # per-token LayerNorm after it: the same rows, fewer of them
        x = self.ln_pre(x)
        # Only the class token is read out: the last block skips every other token's query and MLP.
        x = self.transformer(x, queries=1)
        return self.ln_post(x[:, 0]) @ self.proj

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'positional_embedding'
        if key in state_dict and state_dict[key].shape != self.positional_embedding.shape:
            state_dict[key] = resize_pos_embed(state_dict[key], self.positional_embedding.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
