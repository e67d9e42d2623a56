"""The LoRA leaf configs build their models (on the meta device: no memory, no weights) with only the
adapters trainable, save adapters-only checkpoints and name the base weights."""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.models.adapters import is_adapter_key
from cnclip_mm.registry import MODELS
from cnclip_mm.utils import share_tokenizer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LEAVES = sorted(
    glob.glob(osp.join(REPO, 'configs', 'lora', '*.py'))
    + glob.glob(osp.join(REPO, 'configs', 'demo', 'lora*.py'))
)


def test_leaves_exist():
    assert len(LEAVES) >= 2


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: osp.relpath(p, REPO))
def test_lora_leaf_builds_with_only_adapters_trainable(path):
    cfg = share_tokenizer(Config.fromfile(path))
    cfg.model.tokenizer = None  # the demo's vocab is generated with its data
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(is_adapter_key(n) for n in trainable)
    wrapped = {n.rsplit('.lora_', 1)[0] for n in trainable}
    assert len(wrapped) == 4 * model.image_encoder.layers + 6 * len(
        model.text_encoder.bert.encoder.layer
    )
    assert cfg.default_hooks.adapter_checkpoint.type == 'AdapterCheckpointHook' and cfg.load_from
