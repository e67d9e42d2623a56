"""ZeroShotAccuracy on hand-made scores."""
import pytest
import torch

from cnclip_mm.evaluation import ZeroShotAccuracy
from cnclip_mm.registry import METRICS
from cnclip_mm.structures.data_sample import DataSample

SCORES = torch.tensor([
    [0.1, 0.7, 0.2, 0.0, 0.0, 0.0, 0.0],  # label 1: top-1 hit
    [0.5, 0.1, 0.4, 0.3, 0.2, 0.0, 0.0],  # label 4: rank 5 -> top-5 hit only
    [0.5, 0.1, 0.4, 0.3, 0.2, 0.05, 0.0],  # label 6: rank 7 -> miss
    [0.0, 0.1, 0.5, 0.9, 0.0, 0.0, 0.0],  # label 2: rank 2 -> top-5 hit
])
LABELS = torch.tensor([1, 4, 6, 2])


def test_calculate():
    out = ZeroShotAccuracy.calculate(SCORES, LABELS)
    assert out == {'top1': 25.0, 'top5': 75.0}
    assert ZeroShotAccuracy.calculate(SCORES[:, :3], torch.tensor([1, 0, 2, 1]), topk=(1, 5)) == {
        'top1': 50.0, 'top5': 100.0}


def test_metric_through_process():
    metric = METRICS.build(dict(type='ZeroShotAccuracy'))
    samples = []
    for score, label in zip(SCORES, LABELS):
        ds = DataSample().set_gt_label(int(label))
        ds.pred_score = score
        samples.append(ds.to_dict())
    metric.process(None, samples)
    assert metric.evaluate(len(samples)) == {'zeroshot/top1': 25.0, 'zeroshot/top5': 75.0}


def test_missing_prediction_is_explained():
    metric = ZeroShotAccuracy()
    with pytest.raises(KeyError, match='set_zeroshot_classes'):
        metric.process(None, [DataSample().set_gt_label(0).to_dict()])
