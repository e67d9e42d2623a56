"""Knowledge distillation from a frozen teacher CLIP, added to the contrastive loss.

Two terms, each with its weight: the official image-feature cosine loss ``1 - mean_i cos(t_i, s_i)``
(official ``cosineSimilarityLoss``; a student of another width is linearly interpolated to the
teacher's, as there) and the KL divergence between the teacher's and the student's image->text and
text->image similarity distributions over the global batch.
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnclip_mm.registry import MODELS

from .context import batch_context
from .contrastive import gather_features


class _Frozen:
    """Holds the teacher outside the module tree: not in ``state_dict``, ``parameters()``, the
    optimizer or DDP, untouched by ``model.train()``, shared (not copied) by EMA's deepcopy."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __deepcopy__(self, memo):
        return self


def build_teacher(teacher: Union[dict, nn.Module]) -> nn.Module:
    """A frozen, eval-mode teacher from ``init_model`` arguments (``config``, ``checkpoint``, ...)."""
    if isinstance(teacher, dict):
        from cnclip_mm.models.builder import init_model
        unknown = set(teacher) - {'config', 'checkpoint', 'vocab_file', 'strict'}
        if unknown:
            raise ValueError(f'DistillationLoss.teacher: unknown keys {sorted(unknown)}; '
                             'give init_model arguments: config, checkpoint, vocab_file, strict')
        teacher = init_model(**teacher)
    return teacher.eval().requires_grad_(False)


@MODELS.register_module()
class DistillationLoss(nn.Module):
    """``contrastive + cosine_weight * L_cos + kl_weight * L_kl`` with a frozen teacher.

    Args:
        teacher: ``init_model`` arguments (``dict(checkpoint=..., config=None)``; any format and variant
            ``init_model`` loads) or a built ``ChineseCLIP``.
        contrastive: config of the student's own loss (``ContrastiveLoss``, aware or not).
        cosine_weight: weight of the image-feature cosine loss (official ``kd_loss_weight``).
        kl_weight: weight of the similarity-distribution KL loss.
        kl_temperature: softmax temperature ``T`` of both distributions (the KL is scaled by ``T**2``).
        detach_student: official behaviour: the official code computes the cosine loss on detached
            student features, so it adds to the logged loss but sends no gradient. Off by default.
    """

    def __init__(self, teacher: Union[dict, nn.Module], contrastive: Optional[dict] = None,
                 cosine_weight: float = 1.0, kl_weight: float = 0.0, kl_temperature: float = 1.0,
                 detach_student: bool = False) -> None:
        super().__init__()
        self.contrastive = MODELS.build(contrastive or dict(type='ContrastiveLoss'))
        self._teacher = _Frozen(build_teacher(teacher))
        self.cosine_weight = cosine_weight
        self.kl_weight = kl_weight
        self.kl_temperature = kl_temperature
        self.detach_student = detach_student

    @property
    def teacher(self) -> nn.Module:
        return self._teacher.model

    @torch.no_grad()
    def batch_context(self, inputs: dict, data_samples: Optional[list]) -> dict:
        """The teacher's features of the batch (computed once per batch, no graph)."""
        ctx = batch_context(self.contrastive, inputs, data_samples)
        images = inputs['images']
        teacher = self.teacher.to(images.device).eval()
        size = getattr(teacher.image_encoder, 'img_size', images.shape[-1])
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode='bicubic', align_corners=False)
        ctx['teacher_image_feats'] = teacher.extract_image_feat(images)
        if self.kl_weight:
            ctx['teacher_text_feats'] = teacher.extract_text_feat(inputs['text_ids'])
            ctx['teacher_scale'] = teacher.logit_scale.exp().clamp(max=100)
        return ctx

    def forward(self, image_feats: Tensor, text_feats: Tensor, logit_scale: Tensor,
                teacher_image_feats: Tensor, teacher_text_feats: Optional[Tensor] = None,
                teacher_scale: Optional[Tensor] = None, **kwargs) -> dict:
        """Named terms (``loss_*``, summed by the caller); ``kwargs`` go to the contrastive loss."""
        losses = dict(loss_contrastive=self.contrastive(image_feats, text_feats, logit_scale, **kwargs))
        if self.cosine_weight:
            student = image_feats.detach() if self.detach_student else image_feats
            if student.shape[1] != teacher_image_feats.shape[1]:
                student = F.interpolate(student[None], size=teacher_image_feats.shape[1], mode='linear',
                                        align_corners=False)[0]
            cos = F.cosine_similarity(teacher_image_feats.to(student.dtype), student, dim=1).mean()
            losses['loss_distill_cos'] = self.cosine_weight * (1 - cos)
        if self.kl_weight:
            if teacher_text_feats is None:
                raise ValueError('DistillationLoss: kl_weight needs teacher_text_feats (from batch_context)')
            losses['loss_distill_kl'] = self.kl_weight * self._kl(
                image_feats, text_feats, logit_scale, teacher_image_feats, teacher_text_feats, teacher_scale)
        return losses

    def _kl(self, img, txt, logit_scale, t_img, t_txt, t_scale) -> Tensor:
        """Mean over this rank's rows of KL(teacher || student), both directions, times ``T**2``."""
        if not torch.is_tensor(logit_scale):
            logit_scale = torch.tensor(float(logit_scale), device=img.device)
        scale = logit_scale.exp().clamp(max=self.contrastive.max_logit_scale) / self.kl_temperature
        t_scale = t_scale / self.kl_temperature
        all_img, all_txt = gather_features(img), gather_features(txt)
        t_all_img, t_all_txt = gather_features(t_img, False), gather_features(t_txt, False)
        total = 0.0
        for s_logits, t_logits in ((scale * img @ all_txt.t(), t_scale * t_img @ t_all_txt.t()),
                                   (scale * txt @ all_img.t(), t_scale * t_txt @ t_all_img.t())):
            dtype = torch.promote_types(s_logits.dtype, torch.float32)  # fp32 softmax under AMP
            total = total + F.kl_div(F.log_softmax(s_logits.to(dtype), dim=1),
                                     F.log_softmax(t_logits.to(dtype), dim=1),
                                     reduction='batchmean', log_target=True)
        return total / 2 * self.kl_temperature ** 2
