"""Text<->image retrieval recall (R@1/5/10 and mean recall) as the official Chinese-CLIP defines it."""
from typing import Dict, Hashable, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from cnclip_mm.registry import METRICS

from ..functional import recall_at_k, retrieval_ranks


def _to_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return value.reshape(-1).tolist()
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def _scalar(value) -> Hashable:
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def _check_missing_positive(value: str) -> None:
    if value not in ('miss', 'ignore'):
        raise ValueError(f"RetrievalRecall: missing_positive must be 'miss' or 'ignore', got {value!r}")


@METRICS.register_module()
class RetrievalRecall(BaseMetric):
    """Recall@k of text->image and image->text retrieval.

    Consumes predict-mode data samples of a retrieval dataset: image items carry ``image_feat`` and
    ``image_id``; text items carry ``text_feat``, ``text_id`` and ``gt_image_ids``.

    Definitions (official): a text hits at k if any of its ``gt_image_ids`` is among its top-k images;
    an image hits at k if any text listing it is among its top-k texts. Ties are counted against the
    query. A text whose positive images are all absent from the evaluated images counts as a miss, as in
    the official ``evaluation.py`` (``missing_positive='miss'``); ``'ignore'`` leaves such texts out of the
    denominator instead. An image that no text lists is no query of the official image->text annotation
    and stays out in both modes. Either count is logged as a warning.

    Args:
        topk: the k values.
        t2i_only: report text->image only (MUGE); mean recall is then the mean of those values.
        missing_positive: ``'miss'`` (official) or ``'ignore'`` for texts without a positive in the gallery.
        chunk_size: text rows per similarity block (default: blocks of ~2**25 scores).
        device: where compute_metrics runs the similarity ('cpu', 'cuda'); default CPU.
        collect_device / prefix: as in ``BaseMetric``.
    """

    default_prefix = 'retrieval'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10),
                 t2i_only: bool = False,
                 missing_positive: str = 'miss',
                 chunk_size: Optional[int] = None,
                 device: str = 'cpu',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(int(k) for k in topk)
        self.t2i_only = t2i_only
        _check_missing_positive(missing_positive)
        self.missing_positive = missing_positive
        self.chunk_size = chunk_size
        self.device = device

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep one small result per data sample (so collect_results can drop padding duplicates)."""
        for sample in data_samples:
            result = {}
            if 'image_feat' in sample:
                if 'image_id' not in sample:
                    raise KeyError('RetrievalRecall: an image item has image_feat but no image_id')
                result['image_id'] = _scalar(sample['image_id'])
                result['image_feat'] = sample['image_feat'].detach().float().cpu()
            if 'text_feat' in sample:
                result['text_id'] = _scalar(sample.get('text_id'))
                result['text_feat'] = sample['text_feat'].detach().float().cpu()
                result['gt_image_ids'] = [_scalar(i) for i in _to_list(sample.get('gt_image_ids'))]
            if not result:
                raise KeyError('RetrievalRecall: a data sample has neither image_feat nor text_feat; '
                               'run the model in predict mode on a retrieval dataset (test_mode=True)')
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        image_ids, image_feats, seen = [], [], set()
        text_feats, gts = [], []
        for res in results:
            if 'image_feat' in res and res['image_id'] not in seen:
                seen.add(res['image_id'])
                image_ids.append(res['image_id'])
                image_feats.append(res['image_feat'])
            if 'text_feat' in res:
                text_feats.append(res['text_feat'])
                gts.append(res['gt_image_ids'])
        if not image_feats or not text_feats:
            raise ValueError(f'RetrievalRecall needs image and text items, got {len(image_feats)} images '
                             f'and {len(text_feats)} texts')
        return self.calculate(torch.stack(image_feats), torch.stack(text_feats), image_ids, gts,
                              topk=self.topk, t2i_only=self.t2i_only, chunk_size=self.chunk_size,
                              device=self.device, missing_positive=self.missing_positive)

    @staticmethod
    def calculate(image_feats: torch.Tensor,
                  text_feats: torch.Tensor,
                  image_ids: Sequence[Hashable],
                  text_gt_image_ids: Sequence[Sequence[Hashable]],
                  topk: Sequence[int] = (1, 5, 10),
                  t2i_only: bool = False,
                  chunk_size: Optional[int] = None,
                  device: str = 'cpu',
                  missing_positive: str = 'miss') -> Dict[str, float]:
        """Recall from features, usable without an evaluator.

        Args:
            image_feats: [I, D] (normalised for cosine similarity).
            text_feats: [T, D].
            image_ids: the id of each image row.
            text_gt_image_ids: for each text row, the ids of its images.
            missing_positive: ``'miss'`` (official) or ``'ignore'``: texts whose images are all absent.

        Returns:
            ``{'t2i_R@1': .., ..., 'i2t_R@10': .., 'mean_recall': ..}`` in percent (no i2t keys
            when ``t2i_only``).
        """
        logger = MMLogger.get_current_instance()
        _check_missing_positive(missing_positive)
        if len(image_ids) != len(image_feats):
            raise ValueError(f'{len(image_ids)} image ids for {len(image_feats)} image features')
        if len(text_gt_image_ids) != len(text_feats):
            raise ValueError(f'{len(text_gt_image_ids)} ground-truth lists for {len(text_feats)} texts')
        index = {}
        for i, image_id in enumerate(image_ids):
            index.setdefault(image_id, i)
        positives, unknown = [], 0
        for ids in text_gt_image_ids:
            cols = []
            for image_id in ids:
                if image_id in index:
                    cols.append(index[image_id])
                else:
                    unknown += 1
            positives.append(sorted(set(cols)))
        if unknown:
            logger.warning(f'RetrievalRecall: {unknown} ground-truth image ids are not among the '
                           f'{len(image_ids)} evaluated images and were ignored')
        if not any(positives):
            raise ValueError('RetrievalRecall: no text has a ground-truth image among the evaluated '
                             'images (a test split without public labels, e.g. MUGE test?). Use '
                             'tools/analysis/topk_predictions.py and the official server instead.')
        t2i, i2t = retrieval_ranks(text_feats, image_feats, positives, reverse=not t2i_only,
                                   chunk_size=chunk_size, device=device)
        metrics: Dict[str, float] = {}
        values: List[float] = []
        directions = [('t2i', t2i, 'texts')] + ([] if t2i_only else [('i2t', i2t, 'images')])
        for name, ranks, what in directions:
            as_miss = name == 't2i' and missing_positive == 'miss'
            recalls, missing = recall_at_k(ranks, topk, count_missing=as_miss)
            if missing:
                fate = ('counted as misses (official definition)' if as_miss
                        else 'left out of the denominator')
                logger.warning(f'RetrievalRecall {name}: {missing} {what} without any positive among the '
                               f'evaluated items are {fate}')
            for k, r in zip(topk, recalls):
                metrics[f'{name}_R@{k}'] = r
            values.extend(recalls)
        metrics['mean_recall'] = sum(values) / len(values)
        return metrics
