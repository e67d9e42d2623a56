"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023), distributed as a ring of text-feature blocks.

Every (image, text) pair of the global batch is an independent binary question, "is this the
matching pair?": ``-log sigmoid(z_ij * (t * x_i . y_j + b))`` with ``z_ij = +1`` on matching pairs and
``-1`` elsewhere, summed over all texts and averaged over this rank's images. No softmax couples the
columns, so a rank can score its images against one block of texts at a time: its own texts first
(the diagonal holds the positives), then each other rank's texts as they travel around the ring
(all negatives). Only one remote block is held at a time, and the backward pass sends the texts
around again together with the gradient they gathered, which returns to their owner at the end:
memory is that of one local block, whatever the world size.
"""
from contextlib import nullcontext
from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.amp.autocast_mode import is_autocast_available

from cnclip_mm.registry import MODELS

from .contrastive import _dist_info, gather_features

EXCHANGES = ('ring', 'all_gather')


def sigmoid_block_loss(image_feats: Tensor, text_feats: Tensor, scale: Tensor, bias: Tensor,
                       positive_offset: Optional[int]) -> Tensor:
    """``-sum log sigmoid(z * (scale * image_feats @ text_feats.T + bias))`` over an ``[N, M]`` block.

    Args:
        image_feats: ``[N, D]`` image features.
        text_feats: ``[M, D]`` text features.
        scale: the temperature ``t`` (not its log).
        bias: the logit bias ``b``.
        positive_offset: image ``i`` matches text ``i + positive_offset``; ``None``: no pair matches.

    Returns:
        The block's summed loss, in float32 at least (autocast off: half-precision features still
        get float32 logits).
    """
    dtype = torch.promote_types(image_feats.dtype, torch.float32)
    device = image_feats.device.type
    # The ring's backward recomputes blocks outside autocast: the forward must compute them the same way.
    with torch.autocast(device, enabled=False) if is_autocast_available(device) else nullcontext():
        logits = scale.to(dtype) * image_feats.to(dtype) @ text_feats.to(dtype).t() + bias.to(dtype)
        signs = -torch.ones_like(logits)
        if positive_offset is not None:
            rows = torch.arange(logits.shape[0], device=logits.device)
            cols = torch.arange(logits.shape[1], device=logits.device)
            signs = torch.where(cols == rows[:, None] + positive_offset, 1.0, signs)
        return -F.logsigmoid(signs * logits).sum()


def pass_right(x: Tensor) -> Tensor:
    """Send ``x`` to the next rank of the ring and return what the previous rank sent (same shape)."""
    rank, world = _dist_info()
    received = torch.empty_like(x)
    ops = [dist.P2POp(dist.isend, x.contiguous(), (rank + 1) % world),
           dist.P2POp(dist.irecv, received, (rank - 1) % world)]
    for request in dist.batch_isend_irecv(ops):
        request.wait()
    return received


class _RingSigmoidLoss(torch.autograd.Function):
    """Sum of this rank's blocks against every rank's texts, passed around the ring.

    Forward keeps only the local inputs. Backward re-sends the texts around the ring, each with
    the gradient that the ranks it visited have added to it, and one last pass hands every text
    gradient back to its owner: the gradient of all ranks' losses w.r.t. the local texts, as the
    all-gather with gradient (:func:`gather_features`) gives, without holding every rank's texts.
    """

    @staticmethod
    def forward(ctx, image_feats: Tensor, text_feats: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(image_feats, text_feats, scale, bias)
        _, world = _dist_info()
        loss = sigmoid_block_loss(image_feats, text_feats, scale, bias, 0)
        held = text_feats
        for _ in range(world - 1):
            held = pass_right(held)
            loss = loss + sigmoid_block_loss(image_feats, held, scale, bias, None)
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        image_feats, text_feats, scale, bias = ctx.saved_tensors
        _, world = _dist_info()

        def block_grads(texts: Tensor, positive_offset: Optional[int]):
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_() for t in (image_feats, texts, scale, bias)]
                block = sigmoid_block_loss(*leaves, positive_offset)
                # Scaled here by this rank's own output gradient: the text gradients travel to other ranks.
                return torch.autograd.grad(block, leaves, grad.to(block.dtype))

        g_image, g_text, g_scale, g_bias = block_grads(text_feats, 0)
        held, gathered = text_feats, torch.zeros_like(text_feats)
        for _ in range(world - 1):
            held, gathered = pass_right(torch.stack([held, gathered])).unbind(0)
            d_image, d_text, d_scale, d_bias = block_grads(held, None)
            g_image, gathered = g_image + d_image, gathered + d_text
            g_scale, g_bias = g_scale + d_scale, g_bias + d_bias
        if world > 1:
            g_text = g_text + pass_right(gathered)  # back to the owner: the texts have gone full circle
        return g_image, g_text, g_scale, g_bias


@MODELS.register_module()
class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss with a learned temperature and bias (SigLIP), selectable as ``model.loss``.

    The temperature is the model's ``logit_scale`` (``t = exp(logit_scale)``; SigLIP starts it at
    ``log 10``: set ``model.init_logit_scale``); the bias ``b`` is this module's parameter
    ``logit_bias`` (key ``loss_module.logit_bias`` in checkpoints), started at -10 so that the
    initial loss is not swamped by the many negatives. Under DDP the mean of the ranks' losses and
    the averaged gradients equal one process on the global batch.

    The bias trains with the temperature: when the caller passes a temperature that needs no
    gradient (the feature-cache accumulation counts it in one micro-batch pass only) the bias is
    held constant for that call too.

    Args:
        init_logit_bias: starting bias (SigLIP: -10).
        exchange: ``'ring'`` (default): other ranks' texts visit in turn, memory of one block;
            ``'all_gather'``: gather every rank's texts and score them at once (the reference the
            memory benchmark compares with).
        max_logit_scale: cap applied to ``exp(logit_scale)`` (as the softmax loss: 100).
        loss_weight: multiplier on the returned loss.
    """

    def __init__(self, init_logit_bias: float = -10.0, exchange: str = 'ring', max_logit_scale: float = 100.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if exchange not in EXCHANGES:
            raise ValueError(f'SigLipLoss: exchange must be one of {EXCHANGES}, got {exchange!r}')
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)))
        self.exchange = exchange
        self.max_logit_scale = max_logit_scale
        self.loss_weight = loss_weight

    def forward(self, image_feats: Tensor, text_feats: Tensor, logit_scale: Tensor) -> Dict[str, Tensor]:
        """Compute the loss.

        Args:
            image_feats: ``[N, D]`` L2-normalised image features of this rank.
            text_feats: ``[N, D]`` L2-normalised text features, row i paired with image i.
            logit_scale: log temperature (scalar tensor or float).

        Returns:
            ``dict(loss=..., logit_bias=...)``: this rank's loss (summed over all texts, averaged over
            its images) and the bias for logging.
        """
        if image_feats is None or text_feats is None:
            raise ValueError('SigLipLoss needs both image_feats and text_feats (got None); '
                             'every training sample must carry an image and a text')
        if image_feats.shape != text_feats.shape or image_feats.dim() != 2:
            raise ValueError('SigLipLoss: image_feats and text_feats must both be [N, D], got '
                             f'{tuple(image_feats.shape)} and {tuple(text_feats.shape)}')
        if not torch.is_tensor(logit_scale):
            logit_scale = torch.tensor(float(logit_scale), device=image_feats.device)
        scale = logit_scale.exp().clamp(max=self.max_logit_scale)
        bias = self.logit_bias if logit_scale.requires_grad or not torch.is_grad_enabled() \
            else self.logit_bias.detach()
        rank, world = _dist_info()
        n = image_feats.shape[0]
        if world == 1:
            total = sigmoid_block_loss(image_feats, text_feats, scale, bias, 0)
        elif self.exchange == 'ring':
            total = _RingSigmoidLoss.apply(image_feats, text_feats, scale, bias)
        else:
            all_texts = gather_features(text_feats, with_grad=True)
            total = sigmoid_block_loss(image_feats, all_texts, scale, bias, rank * n)
        return dict(loss=total / n * self.loss_weight, logit_bias=self.logit_bias.detach())

    def extra_repr(self) -> str:
        return f'exchange={self.exchange!r}, max_logit_scale={self.max_logit_scale}, loss_weight={self.loss_weight}'
