"""Writes a picture of a few zero-shot predictions (image, top-k class names, ground truth) after testing."""
import os.path as osp
from typing import List, Optional

from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook

from cnclip_mm.registry import HOOKS


@HOOKS.register_module()
class ZeroShotVisualizationHook(Hook):
    """After the test epoch, draw the first ``num_images`` test images with their top-k predictions.

    Args:
        out_dir: folder for ``zeroshot_examples.png``; relative paths go under the work dir.
        num_images: how many images to draw.
        topk: class names listed per image.
        font_path: a CJK font file; default searched.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str = 'show', num_images: int = 8, topk: int = 5,
                 font_path: Optional[str] = None) -> None:
        self.out_dir = out_dir
        self.num_images = num_images
        self.topk = topk
        self.font_path = font_path
        self._items: List[dict] = []

    def before_test_epoch(self, runner) -> None:
        self._items = []

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for sample in outputs or []:
            if len(self._items) >= self.num_images or 'pred_score' not in sample:
                continue
            score = sample.pred_score.detach().float().cpu()
            top = score.topk(min(self.topk, score.numel()))
            self._items.append(dict(idx=int(sample.sample_idx), top=top.indices.tolist(),
                                    scores=top.values.tolist(),
                                    gt=int(sample.gt_label.reshape(-1)[0]) if 'gt_label' in sample else -1))

    def after_test_epoch(self, runner, metrics=None) -> None:
        items = [x for part in all_gather_object(self._items) for x in part][:self.num_images]
        self._items = []
        if not is_main_process():
            return
        if not items:
            runner.logger.warning('ZeroShotVisualizationHook: no pred_score in the test outputs to draw')
            return
        dataset = runner.test_dataloader.dataset
        classes = list(dataset.metainfo.get('classes') or [])

        def name(i: int) -> str:
            return classes[i] if 0 <= i < len(classes) else str(i)

        from cnclip_mm.visualization import render_zeroshot_examples
        out_dir = self.out_dir if osp.isabs(self.out_dir) else osp.join(runner.work_dir, self.out_dir)
        path = render_zeroshot_examples(
            [dataset[x['idx']]['inputs'].permute(1, 2, 0).numpy() for x in items],
            [[name(i) for i in x['top']] for x in items], [x['scores'] for x in items],
            [name(x['gt']) for x in items], osp.join(out_dir, 'zeroshot_examples.png'), font_path=self.font_path)
        runner.logger.info(f'ZeroShotVisualizationHook: {len(items)} predictions drawn in {path}')
