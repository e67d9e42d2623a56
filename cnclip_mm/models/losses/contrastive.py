"""Symmetric image-text contrastive (InfoNCE) loss with cross-rank negatives."""
from typing import Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from cnclip_mm.registry import MODELS

from .positives import POSITIVE_KEYS, positive_keys, positive_mask


def _dist_info() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient w.r.t. the local shard.

    Each rank's loss uses all shards, so the gradient of the summed losses w.r.t. this rank's
    features is the all-reduce (sum) of the gathered gradients, sliced at this rank's block.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        rank, world = _dist_info()
        ctx.rank, ctx.size = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.size
        return grad[start:start + ctx.size]


def gather_features(feats: Tensor, with_grad: bool = True) -> Tensor:
    """Concatenate ``feats`` of all ranks in rank order (all ranks must hold the same batch size).

    Args:
        feats: ``[N, D]`` local features.
        with_grad: backpropagate into the local shard the gradients of every rank's loss. Without
            it the other ranks' shards are constants and only this rank's loss reaches ``feats``.

    Returns:
        ``[world_size * N, D]``; ``feats`` itself when not distributed.
    """
    rank, world = _dist_info()
    if world == 1:
        return feats
    if with_grad:
        return _GatherWithGrad.apply(feats)
    parts = [torch.empty_like(feats) for _ in range(world)]
    dist.all_gather(parts, feats.detach().contiguous())
    parts[rank] = feats
    return torch.cat(parts, dim=0)


@MODELS.register_module()
class ContrastiveLoss(nn.Module):
    """Mean of image->text and text->image cross-entropy over cosine logits.

    Features of all ranks are gathered so that every sample sees the global batch as negatives.
    With ``gather_with_grad=True`` (default) the gradients under DDP equal those of one process on
    the concatenated batch; with ``False`` the gather is cheaper but each rank only backpropagates
    its own loss (the official ``--gather-with-grad`` off behaviour).

    Args:
        local_loss: each rank only scores its own rows against all columns (labels offset by
            ``rank * N``): O(N * world N) logits instead of O((world N)^2). The gradients are the
            same when ``gather_with_grad`` is on.
        gather_with_grad: see above.
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`.
        max_logit_scale: cap applied to ``exp(logit_scale)`` (official: 100).
        loss_weight: multiplier on the returned loss.
        positives: false-negative-aware targets (not official; default off): any of ``'image_id'``,
            ``'text'``, ``'label'``. Pairs (i, j) of the global batch whose samples share one of these
            keys are positives too, and each row's target is uniform over its positives
            (docs/training.md gives the formula).
    """

    def __init__(self, local_loss: bool = False, gather_with_grad: bool = True,
                 label_smoothing: float = 0.0, max_logit_scale: float = 100.0,
                 loss_weight: float = 1.0, positives: Sequence[str] = ()) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'ContrastiveLoss: label_smoothing must be in [0, 1), got {label_smoothing}')
        unknown = sorted(set(positives) - set(POSITIVE_KEYS))
        if unknown:
            raise ValueError(f'ContrastiveLoss: unknown positives {unknown}; choose from {POSITIVE_KEYS}')
        self.positives = tuple(positives)
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.label_smoothing = label_smoothing
        self.max_logit_scale = max_logit_scale
        self.loss_weight = loss_weight

    def batch_context(self, inputs: dict, data_samples: Optional[list]) -> dict:
        """Keyword arguments of :meth:`forward` taken from the batch: ``pos_keys`` when aware."""
        if not self.positives:
            return {}
        samples = [data_samples[slot] for slot in inputs['image_slots']] if data_samples else []
        if len(samples) != len(inputs['image_slots']):
            raise ValueError('ContrastiveLoss(positives=...) needs the data samples of the batch')
        return dict(pos_keys=positive_keys(samples, self.positives, inputs['images'].device))

    def forward(self, image_feats: Tensor, text_feats: Tensor, logit_scale: Tensor,
                pos_keys: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            image_feats: ``[N, D]`` L2-normalised image features of this rank.
            text_feats: ``[N, D]`` L2-normalised text features, row i paired with image i.
            logit_scale: log-space temperature (scalar tensor or float).
            pos_keys: ``[N, K]`` keys of this rank's samples (see :func:`positive_keys`); samples
                sharing a key are positives. ``None``: only the diagonal (official).

        Returns:
            Scalar loss (this rank's share under ``local_loss``).
        """
        if image_feats is None or text_feats is None:
            raise ValueError('ContrastiveLoss needs both image_feats and text_feats (got None); '
                             'every training sample must carry an image and a text')
        if image_feats.shape != text_feats.shape or image_feats.dim() != 2:
            raise ValueError('ContrastiveLoss: image_feats and text_feats must both be [N, D], got '
                             f'{tuple(image_feats.shape)} and {tuple(text_feats.shape)}')
        if not torch.is_tensor(logit_scale):
            logit_scale = torch.tensor(float(logit_scale), device=image_feats.device)
        scale = logit_scale.exp().clamp(max=self.max_logit_scale)
        rank, world = _dist_info()
        n = image_feats.shape[0]
        all_img = gather_features(image_feats, self.gather_with_grad)
        all_txt = gather_features(text_feats, self.gather_with_grad)
        if self.local_loss:
            logits_i2t = scale * image_feats @ all_txt.t()
            logits_t2i = scale * text_feats @ all_img.t()
            labels = torch.arange(n, device=image_feats.device) + rank * n
        else:
            logits_i2t = scale * all_img @ all_txt.t()
            logits_t2i = logits_i2t.t()
            labels = torch.arange(n * world, device=image_feats.device)
        # Half-precision features (AMP) still get a float32 softmax.
        dtype = torch.promote_types(logits_i2t.dtype, torch.float32)
        if pos_keys is not None:
            # The positive mask is symmetric, so one [rows, global] target serves both directions.
            all_keys = gather_features(pos_keys, with_grad=False)
            row_keys = pos_keys if self.local_loss else all_keys
            target = positive_mask(row_keys, all_keys, labels).to(dtype)
            target = target / target.sum(dim=1, keepdim=True)
            labels = target * (1 - self.label_smoothing) + self.label_smoothing / target.shape[1]
            smoothing = 0.0
        else:
            smoothing = self.label_smoothing
        loss = (F.cross_entropy(logits_i2t.to(dtype), labels, label_smoothing=smoothing)
                + F.cross_entropy(logits_t2i.to(dtype), labels, label_smoothing=smoothing)) / 2
        return loss * self.loss_weight

    def extra_repr(self) -> str:
        return (f'local_loss={self.local_loss}, gather_with_grad={self.gather_with_grad}, '
                f'label_smoothing={self.label_smoothing}, max_logit_scale={self.max_logit_scale}, '
                f'positives={self.positives}')

