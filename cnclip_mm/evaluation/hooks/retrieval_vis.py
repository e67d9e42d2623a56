"""Writes pictures of a few retrieval queries (caption + top-k images, hits marked) after testing."""
import os.path as osp
from typing import List, Optional

import torch
from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook

from cnclip_mm.registry import HOOKS

from ..functional import chunked_topk


def _get(sample, key, default=None):
    return sample.get(key, default) if isinstance(sample, dict) else getattr(sample, key, default)


def _value(x):
    return x.item() if isinstance(x, torch.Tensor) and x.numel() == 1 else x


@HOOKS.register_module()
class RetrievalVisualizationHook(Hook):
    """After the test epoch, render ``num_queries`` text->image queries to ``out_dir``.

    Keeps every image feature (with its dataset index) and the first ``num_queries`` texts per
    rank; the pictures are drawn on rank 0 from the dataset's own (resized) images.

    Args:
        out_dir: folder for ``retrieval_{text_id}.png``; relative paths go under the work dir.
        num_queries: how many captions to draw.
        topk: images per caption.
        font_path: a CJK font file; default searched (see ``cnclip_mm.visualization.find_cjk_font``).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str = 'show', num_queries: int = 5, topk: int = 5,
                 font_path: Optional[str] = None) -> None:
        self.out_dir = out_dir
        self.num_queries = num_queries
        self.topk = topk
        self.font_path = font_path
        self._images: List[dict] = []
        self._texts: List[dict] = []

    def before_test_epoch(self, runner) -> None:
        self._images, self._texts = [], []

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for sample in outputs or []:
            idx = _get(sample, 'sample_idx')
            feat = _get(sample, 'image_feat')
            if feat is not None and idx is not None:
                self._images.append(dict(idx=int(idx), image_id=_value(_get(sample, 'image_id')),
                                         feat=feat.detach().float().cpu()))
            feat = _get(sample, 'text_feat')
            if feat is not None and len(self._texts) < self.num_queries:
                gt = _get(sample, 'gt_image_ids') or []
                gt = gt.tolist() if isinstance(gt, torch.Tensor) else list(gt)
                self._texts.append(dict(text_id=_value(_get(sample, 'text_id')), text=_get(sample, 'text', ''),
                                        gt=[_value(g) for g in gt], feat=feat.detach().float().cpu()))

    def after_test_epoch(self, runner, metrics=None) -> None:
        images = [x for part in all_gather_object(self._images) for x in part]
        texts = [x for part in all_gather_object(self._texts) for x in part][:self.num_queries]
        self._images, self._texts = [], []
        if not is_main_process():
            return
        if not images or not texts:
            runner.logger.warning('RetrievalVisualizationHook: no image and text features to draw '
                                  '(not a retrieval test set?)')
            return
        seen, unique = set(), []
        for item in images:
            if item['image_id'] not in seen:
                seen.add(item['image_id'])
                unique.append(item)
        out_dir = self.out_dir if osp.isabs(self.out_dir) else osp.join(runner.work_dir, self.out_dir)
        dataset = runner.test_dataloader.dataset
        gallery = torch.stack([x['feat'] for x in unique])
        scores, indices = chunked_topk(torch.stack([t['feat'] for t in texts]), gallery, self.topk)
        from cnclip_mm.visualization import render_retrieval_example
        for text, row_s, row_i in zip(texts, scores.tolist(), indices.tolist()):
            picks = [unique[i] for i in row_i]
            pixels = [dataset[p['idx']]['inputs'].permute(1, 2, 0).numpy() for p in picks]
            hits = [p['image_id'] in text['gt'] for p in picks]
            path = osp.join(out_dir, f"retrieval_{text['text_id']}.png")
            render_retrieval_example(text['text'] or str(text['text_id']), pixels, hits, path,
                                     scores=row_s, labels=[p['image_id'] for p in picks],
                                     font_path=self.font_path)
        runner.logger.info(f'RetrievalVisualizationHook: {len(texts)} retrieval examples in {out_dir}')
