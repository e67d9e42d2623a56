"""The zero-shot picture samples across classes, not the first images of a class-sorted test set."""
from types import SimpleNamespace

import torch

from cnclip_mm.evaluation.hooks.zeroshot_vis import ZeroShotVisualizationHook, spread_over_classes
from cnclip_mm.structures import DataSample


def test_spread_over_classes():
    items = [dict(idx=i, gt=i // 10) for i in range(1000)]  # 100 classes, sorted, 10 images each
    picked = spread_over_classes(items, 8)
    assert [x['gt'] for x in picked] == [0, 14, 28, 42, 57, 71, 85, 99]
    assert all(x['idx'] == x['gt'] * 10 for x in picked)  # the first image of each class
    assert spread_over_classes(items[:25], 8) == [items[0], items[10], items[20]]
    unlabeled = [dict(idx=i, gt=-1) for i in range(20)]
    assert spread_over_classes(unlabeled, 8) == unlabeled[:8]


def test_hook_keeps_one_image_per_class():
    hook = ZeroShotVisualizationHook(num_images=4, topk=2)
    hook.before_test_epoch(None)
    outputs = []
    for i in range(30):  # a class-sorted test set: 10 images of each of 3 classes
        s = DataSample(sample_idx=i, gt_label=torch.tensor([i // 10]))
        s.pred_score = torch.tensor([0.5, 0.3, 0.2])
        outputs.append(s)
    hook.after_test_iter(SimpleNamespace(), 0, outputs=outputs)
    assert [(x['idx'], x['gt']) for x in hook._items] == [(0, 0), (10, 1), (20, 2)]
