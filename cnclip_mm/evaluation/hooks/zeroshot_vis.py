"""Writes a picture of a few zero-shot predictions (image, top-k class names, ground truth) after testing."""
import os.path as osp
from typing import List, Optional

from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook

from cnclip_mm.registry import HOOKS


@HOOKS.register_module()
class ZeroShotVisualizationHook(Hook):
    """After the test epoch, draw ``num_images`` test images with their top-k predictions, sampled across
    classes: the first image of each ground-truth class is kept, and the drawn ones are spread evenly over
    the classes seen (a test set sorted by class would otherwise show one class only).

    Args:
        out_dir: folder for ``zeroshot_examples.png``; relative paths go under the work dir.
        num_images: how many images to draw.
        topk: class names listed per image.
        font_path: a CJK font file; default the shipped one.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str = 'show', num_images: int = 8, topk: int = 5,
                 font_path: Optional[str] = None) -> None:
        self.out_dir = out_dir
        self.num_images = num_images
        self.topk = topk
        self.font_path = font_path
        self._items: List[dict] = []  # the first image of each ground-truth class (or the first images)
        self._seen: set = set()

    def before_test_epoch(self, runner) -> None:
        self._items = []
        self._seen = set()

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for sample in outputs or []:
            if 'pred_score' not in sample:
                continue
            gt = int(sample.gt_label.reshape(-1)[0]) if 'gt_label' in sample else -1
            if (gt in self._seen) if gt >= 0 else len(self._items) >= self.num_images:
                continue
            self._seen.add(gt)
            score = sample.pred_score.detach().float().cpu()
            top = score.topk(min(self.topk, score.numel()))
            self._items.append(dict(idx=int(sample.sample_idx), top=top.indices.tolist(),
                                    scores=top.values.tolist(), gt=gt))

    def after_test_epoch(self, runner, metrics=None) -> None:
        items = spread_over_classes([x for part in all_gather_object(self._items) for x in part],
                                    self.num_images)
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
            [name(x['gt']) if x['gt'] >= 0 else None for x in items], osp.join(out_dir, 'zeroshot_examples.png'), font_path=self.font_path)
        runner.logger.info(f'ZeroShotVisualizationHook: {len(items)} predictions drawn in {path}')


def spread_over_classes(items: List[dict], num: int) -> List[dict]:
    """At most ``num`` items with distinct ground truths, evenly spaced over the sorted classes."""
    if any(item['gt'] < 0 for item in items):  # no ground truth: the first images
        return items[:num]
    by_class = {}
    for item in items:
        by_class.setdefault(item['gt'], item)
    ordered = [by_class[gt] for gt in sorted(by_class)]
    if len(ordered) <= num:
        return ordered
    return [ordered[round(i * (len(ordered) - 1) / (num - 1))] if num > 1 else ordered[0] for i in range(num)]
