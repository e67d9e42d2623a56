"""Zero-shot classification accuracy (top-1 / top-5) from ``pred_score`` and ``gt_label``."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from cnclip_mm.registry import METRICS


@METRICS.register_module()
class ZeroShotAccuracy(BaseMetric):
    """Top-k accuracy in percent of zero-shot predictions.

    Each data sample needs ``pred_score`` (Tensor [C], written by the model once
    ``set_zeroshot_classes`` was called, e.g. by ``ZeroShotClassesHook``) and ``gt_label``.
    Only the top-k class indices are kept per sample, so ImageNet-size runs stay small.
    With fewer than k classes, top-k counts every sample as a hit.

    Args:
        topk: the k values; keys are ``top{k}``.
    """

    default_prefix = 'zeroshot'

    def __init__(self, topk: Sequence[int] = (1, 5), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(int(k) for k in topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        maxk = max(self.topk)
        for sample in data_samples:
            if 'pred_score' not in sample:
                raise KeyError('ZeroShotAccuracy: a data sample has no pred_score; set the class '
                               'embeddings first (ZeroShotClassesHook or model.set_zeroshot_classes)')
            if 'gt_label' not in sample:
                raise KeyError('ZeroShotAccuracy: a data sample has no gt_label')
            score = sample['pred_score'].detach().float().cpu()
            top = score.topk(min(maxk, score.numel())).indices
            self.results.append(dict(pred_topk=top, gt_label=int(sample['gt_label'].reshape(-1)[0])))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        gts = torch.tensor([r['gt_label'] for r in results], dtype=torch.long)
        return self._accuracy([r['pred_topk'] for r in results], gts, self.topk)

    @staticmethod
    def _accuracy(pred_topk: Sequence[torch.Tensor], gt: torch.Tensor,
                  topk: Sequence[int]) -> Dict[str, float]:
        if len(gt) == 0:
            raise ValueError('ZeroShotAccuracy: no samples to evaluate')
        out = {}
        for k in topk:
            hits = sum(bool((p[:k] == g).any()) for p, g in zip(pred_topk, gt.tolist()))
            out[f'top{k}'] = 100.0 * hits / len(gt)
        return out

    @staticmethod
    def calculate(pred_scores: torch.Tensor, gt_labels: torch.Tensor,
                  topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
        """Accuracy from [N, C] scores and [N] labels, usable without an evaluator."""
        pred_scores = torch.as_tensor(pred_scores)
        gt_labels = torch.as_tensor(gt_labels).reshape(-1).long()
        if pred_scores.dim() != 2 or pred_scores.shape[0] != gt_labels.shape[0]:
            raise ValueError(f'pred_scores must be [N, C] matching {gt_labels.shape[0]} labels, got '
                             f'{tuple(pred_scores.shape)}')
        maxk = min(max(topk), pred_scores.shape[1])
        top = pred_scores.float().topk(maxk, dim=1).indices
        return ZeroShotAccuracy._accuracy(list(top), gt_labels, topk)
