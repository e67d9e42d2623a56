"""OpenAI-CLIP-style Vision Transformer, parameter names identical to the official ``visual.*`` keys."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnclip_mm.registry import MODELS

from .. import gemm
from .utils import (
    LockableTower,
    attend_through_inputs,
    resize_pos_embed,
    resolve_arch,
    written_out_attention,
)

QUICK_GELU_ALPHA = 1.702
# Up to this many keys, attention on CPU runs as two matmuls and a softmax: CPU flash attention's
# per-block overhead costs more there. The two are even at ~200 keys (benchmarks/attention.py); the
# bound stays lower because the written-out form keeps the probabilities for backward.
SHORT_ATTENTION = 100


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v)`` (no mask, no dropout), fastest form for the length.

    Short sequences on CPU (the demo's 17 tokens: forward + backward 1.0 instead of 2.2 ms a layer)
    keep the probabilities for backward, ``[N, heads, L, L]``, as flash attention does not; at most
    ``SHORT_ATTENTION`` keys that is little more than one activation. Exports keep SDPA.
    """
    if k.shape[-2] > SHORT_ATTENTION or q.device.type != 'cpu' or torch.jit.is_tracing():
        return F.scaled_dot_product_attention(q, k, v)
    return written_out_attention(q, k, v)


def scratch(buffers: Optional[dict], key: str, rows: int, cols: int, like: torch.Tensor) -> Optional[torch.Tensor]:
    """A ``[rows, cols]`` buffer that every block of one inference forward writes into (None without ``buffers``).

    Why: a ViT-B/16 batch of 32 makes a 58 MB q/k/v and a 77 MB MLP hidden state in every block, above
    glibc's 32 MB mmap ceiling, so each was a fresh mapping faulted in page by page (~400 K faults a
    batch). One of each per forward instead.
    """
    if buffers is None:
        return None
    buf = buffers.get(key)
    if buf is None or buf.shape != (rows, cols) or buf.dtype != like.dtype:
        buf = buffers[key] = like.new_empty(rows, cols)
    return buf


def _quick_gelu_mlp(x, w1, b1, w2, b2, inplace: bool, hidden: Optional[torch.Tensor] = None):
    """``(h, silu(h), out)`` with ``h = 1.702 c_fc(x)`` and ``out = c_proj(silu(h)) / 1.702``;
    with ``inplace`` the SiLU overwrites ``h``; ``hidden``: where to write ``h``.

    On the oneDNN route (:mod:`cnclip_mm.models.gemm`; no ``alpha`` / ``beta`` there) the scalings
    are a pass over each output instead.
    """
    a = QUICK_GELU_ALPHA
    if hidden is None and gemm.wants_onednn(x, w1):
        h = gemm.onednn_product(x, w1, b1).mul_(a)
    else:
        h = torch.addmm(b1, x, w1.t(), beta=a, alpha=a, out=hidden)
    s = F.silu(h, inplace=inplace)
    if gemm.wants_onednn(s, w2):
        return h, s, gemm.onednn_product(s, w2, b2 * a).mul_(1 / a)
    return h, s, torch.addmm(b2, s, w2.t(), alpha=1 / a)


class _QuickGELUMLPFunction(torch.autograd.Function):
    """Training path of :class:`QuickGELUMLP` with a hand-written backward.

    Autograd's ``addmm`` backward multiplies the 4x-wide gradient by ``alpha`` in a separate pass; here
    the two scalings cancel analytically (``d/dz silu(a z) / a`` chains to ``silu'(h)``), so backward
    is GEMMs, one in-place ``silu_backward`` and one small in-place scaling of ``c_proj``'s weight gradient.
    Saves the same tensors autograd would: ``x``, the pre-activation ``h`` and ``silu(h)``.
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        h, s, out = _quick_gelu_mlp(x, w1, b1, w2, b2, inplace=False)
        ctx.save_for_backward(x, w1, w2, h, s)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, w1, w2, h, s = ctx.saved_tensors
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        grad_w2 = torch.mm(grad.t(), s).mul_(1 / QUICK_GELU_ALPHA) if need_w2 else None
        grad_b2 = grad.sum(0) if need_b2 else None
        grad_z = gemm.data_grad(grad, w2)  # the 1/a of the forward and the a of h = a z cancel
        torch.ops.aten.silu_backward.grad_input(grad_z, h, grad_input=grad_z)  # in place: no new 4x buffer
        grad_x = gemm.data_grad(grad_z, w1) if need_x else None
        grad_w1 = torch.mm(grad_z.t(), x) if need_w1 else None
        grad_b1 = grad_z.sum(0) if need_b1 else None
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2


class QuickGELUMLP(nn.Module):
    """``c_proj(QuickGELU(c_fc(x)))`` with ``QuickGELU(h) = h * sigmoid(1.702 h)``, OpenAI CLIP's MLP.

    Computed as ``c_proj(silu(1.702 h)) / 1.702``: the two scalings ride in the matmuls (``addmm``'s
    ``alpha`` / ``beta``), so the activation is one SiLU pass over the 4x-wide hidden state (in place
    at inference) instead of three passes and a temporary; training uses
    :class:`_QuickGELUMLPFunction`, whose backward keeps that property. Same function, same parameters
    (``c_fc``, ``c_proj``).
    """

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor, buffers: Optional[dict] = None) -> torch.Tensor:
        """``buffers``: :func:`scratch` buffers of an inference forward."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        params = (self.c_fc.weight, self.c_fc.bias, self.c_proj.weight, self.c_proj.bias)
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, *params))
        tracing = torch.jit.is_tracing()
        if needs_grad and not tracing and not torch.is_autocast_enabled(x.device.type):
            out = _QuickGELUMLPFunction.apply(x, *params)
        else:
            inplace = not (needs_grad or tracing)
            # oneDNN writes fresh outputs only (no out=), so the buffer goes with BLAS
            buffered = inplace and not gemm.wants_onednn(x, params[0])
            hidden = scratch(buffers, 'mlp', x.shape[0], params[0].shape[0], x) if buffered else None
            out = _quick_gelu_mlp(x, *params, inplace=inplace, hidden=hidden)[2]
        return out.view(*shape[:-1], out.shape[-1])


class PackedSelfAttention(nn.Module):
    """Self-attention with a packed q/k/v projection (``in_proj_weight``) run through SDPA."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f'width {width} is not divisible by heads {heads}')
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = gemm.Linear(width, width)

    def forward(self, x: torch.Tensor, queries: Optional[int] = None, buffers: Optional[dict] = None) -> torch.Tensor:
        """Attend from every token, or from the first ``queries`` tokens only (keys: all tokens).

        ``buffers`` (inference only): the q/k/v projection goes into a :func:`scratch` buffer.
        """
        n, length, width = x.shape
        if queries is None and buffers is not None and not gemm.wants_onednn(x, self.in_proj_weight):
            qkv = torch.addmm(self.in_proj_bias, x.reshape(-1, width), self.in_proj_weight.t(),
                              out=scratch(buffers, 'qkv', n * length, 3 * width, x))
            q, k, v = qkv.view(n, length, 3 * width).split(width, -1)
        elif queries is None:
            q, k, v = gemm.linear(x, self.in_proj_weight, self.in_proj_bias).split(width, -1)
        else:
            q = gemm.linear(x[:, :queries], self.in_proj_weight[:width], self.in_proj_bias[:width])
            # keys and values only through the queries (the class-token last block): see the function
            w_k, w_v = self.in_proj_weight[width:].split(width)
            b_k, b_v = self.in_proj_bias[width:].split(width)
            return self.out_proj(attend_through_inputs(q, x, w_k, b_k, w_v, b_v, self.heads))
        # Split on the feature axis, then per-head views: the same strides as viewing [.., 3, heads,
        # dim] and permuting, but backward joins the three gradients with one cat instead of a
        # stack followed by a contiguous copy of the whole q/k/v gradient.
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(n, q.shape[2], width))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: attention then a 4x QuickGELU MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = PackedSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = QuickGELUMLP(width, width * 4)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)

    def forward(self, x: torch.Tensor, queries: Optional[int] = None, buffers: Optional[dict] = None) -> torch.Tensor:
        """All tokens out, or only the first ``queries`` (what the last block owes the class token).

        ``buffers``: :func:`scratch` buffers shared by the blocks of an inference forward.
        """
        out = self.attn(self.ln_1(x), queries, buffers)
        x = (x if queries is None else x[:, :queries])
        if out.requires_grad or x.requires_grad or torch.jit.is_tracing():
            x = x + out
            return x + self.mlp(self.ln_2(x))
        x = out.add_(x)  # no autograd graph: add into the fresh buffers
        return self.mlp(self.ln_2(x), buffers).add_(x)


class Transformer(nn.Module):

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, queries: Optional[int] = None) -> torch.Tensor:
        """Run the blocks; with ``queries`` the last block computes only the first ``queries`` tokens."""
        last = len(self.resblocks) - 1
        inference = not (torch.is_grad_enabled() or torch.jit.is_tracing() or torch.is_autocast_enabled(x.device.type))
        buffers = {} if inference else None  # q/k/v and MLP buffers shared by the blocks (see scratch)
        for i, block in enumerate(self.resblocks):
            rows = queries if i == last else None
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, rows, use_reentrant=False)
            else:
                x = block(x, rows, buffers)
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
    """

    arch_zoo = {
        'b-16': dict(width=768, layers=12, heads=12, patch_size=16, img_size=224, output_dim=512),
        'l-14': dict(width=1024, layers=24, heads=16, patch_size=14, img_size=224, output_dim=768),
        'l-14-336': dict(width=1024, layers=24, heads=16, patch_size=14, img_size=336, output_dim=768),
        'h-14': dict(width=1280, layers=32, heads=16, patch_size=14, img_size=224, output_dim=1024),
    }

    def __init__(self, arch: Union[str, dict] = 'b-16', img_size: Optional[int] = None,
                 output_dim: Optional[int] = None, grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None):
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

    def lock_groups(self) -> list:
        stem = [self.conv1, self.class_embedding, self.positional_embedding, self.ln_pre]
        return [stem, *[[block] for block in self.transformer.resblocks], [self.ln_post, self.proj]]

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """``conv1`` as one matmul: ``[N, 3, H, W]`` -> ``[N, (H/p)*(W/p), width]``.

        The stem's kernel equals its stride (no padding, no bias), so each output is a flattened patch
        times the flattened filter; one GEMM and its weight-gradient GEMM beat the convolution and its
        backward. The tracer (exports) keeps the convolution.
        """
        n, c, h, w = x.shape
        p = self.patch_size
        if torch.jit.is_tracing() or h % p or w % p:
            return self.conv1(x).flatten(2).transpose(1, 2)
        gh, gw = h // p, w // p
        patches = x.reshape(n, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(n * gh * gw, c * p * p)
        return gemm.linear(patches, self.conv1.weight.reshape(self.width, -1)).view(n, gh * gw, self.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_patches(x)  # [N, grid*grid, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = self.positional_embedding
        if pos.shape[0] != x.shape[1]:
            pos = resize_pos_embed(pos, x.shape[1])
        x = self.ln_pre(x + pos.to(x.dtype))
        # Only the class token is read out: the last block skips every other token's query and MLP.
        x = self.transformer(x, queries=1)
        return self.ln_post(x[:, 0]) @ self.proj

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'positional_embedding'
        if key in state_dict and state_dict[key].shape != self.positional_embedding.shape:
            state_dict[key] = resize_pos_embed(state_dict[key], self.positional_embedding.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

