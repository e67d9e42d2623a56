"""get_model / init_model with another variant's weights: one message naming both architectures, as
tools/test.py gives, not a listing of every missing key."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.apis import get_model
from cnclip_mm.models.converters.loading import CheckpointMismatchError
from cnclip_mm.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / 'configs/_base_/models/tiny.py')


def test_other_variant_names_both_architectures(tmp_path):
    cfg = Config.fromfile(TINY).model.to_dict()
    cfg['image_encoder'] = dict(type='ModifiedResNet', arch=dict(layers=(1, 1, 1, 1), width=8), img_size=64,
                                output_dim=64, heads=2)
    ckpt = tmp_path / 'rn.pth'
    torch.save(dict(state_dict=MODELS.build(cfg).state_dict()), ckpt)
    with pytest.raises(CheckpointMismatchError) as err:
        get_model(TINY, pretrained=str(ckpt))
    message = str(err.value)
    assert 'is a ModifiedResNet' in message and 'builds a CLIPVisionTransformer' in message
    assert len(message) < 1000, message
