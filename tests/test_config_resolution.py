"""Every leaf config feeds its model images of the model's resolution, in every loader it defines."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LEAVES = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')) + glob.glob(osp.join(REPO, 'configs', 'demo', '*.py')))
RESIZES = ('ResizeExact', 'RandomResizedCrop', 'LoadRandomResizedCrop', 'LoadResizeImage')


def _datasets(dataset):
    if 'datasets' in dataset:  # ConcatDataset
        for child in dataset['datasets']:
            yield from _datasets(child)
    else:
        yield dataset


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: osp.relpath(p, REPO))
def test_pipelines_match_model_resolution(path):
    cfg = Config.fromfile(path)
    size = cfg.model.image_encoder.get('img_size') or 224
    checked = 0
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if not cfg.get(loader):
            continue
        for dataset in _datasets(cfg[loader]['dataset']):
            for step in dataset.get('pipeline', []):
                if step['type'] in RESIZES:
                    assert step['scale'] == size, f'{loader}: {step} but the model takes {size}px'
                    checked += 1
    assert checked, 'no resize step found'
