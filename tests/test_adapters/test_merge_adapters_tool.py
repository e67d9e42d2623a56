"""tools/model_converters/merge_adapters.py: merged weights in the three formats give the adapted features
(1e-5), load in the reference loaders (transformers' ChineseCLIPModel, the official-format reader), and
export to ONNX."""

import importlib.util
import os.path as osp

import pytest
import torch

from cnclip_mm.models.adapters import is_adapter_key
from cnclip_mm.models.builder import init_model
from cnclip_mm.models.converters import CheckpointMismatchError, load_state_dict_any
from tests.test_adapters.conftest import EPOCHS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEXTS = ['一个红色的圆', '一个蓝色的方块在灰色背景上']


def _tool():
    spec = importlib.util.spec_from_file_location(
        'merge_adapters', osp.join(REPO, 'tools', 'model_converters', 'merge_adapters.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def adapted(lora_run):
    """Images, token ids and the features of the adapted model of the LoRA run's last checkpoint."""
    path = osp.join(lora_run[0], f'epoch_{EPOCHS}.pth')
    model = init_model(checkpoint=path)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ids = model.tokenizer(TEXTS)
    with torch.no_grad():
        return path, images, ids, (model.extract_image_feat(images), model.extract_text_feat(ids))


def _assert_features(model, adapted):
    _, images, ids, expected = adapted
    with torch.no_grad():
        got = model.extract_image_feat(images), model.extract_text_feat(ids)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_merged_own_and_official_checkpoints_give_the_adapted_features(adapted, tmp_path):
    path = adapted[0]
    tool = _tool()
    own = tool.main([path, '--out', str(tmp_path / 'merged.pth')])
    model = init_model(checkpoint=own)  # the stored config has no adapters any more
    assert 'adapters' not in model.cfg and not any(is_adapter_key(k) for k in model.state_dict())
    _assert_features(model, adapted)

    official = tool.main([path, '--format', 'official', '--out', str(tmp_path / 'merged.pt')])
    raw = torch.load(official, weights_only=True)
    assert all(
        k.startswith(
            ('module.visual.', 'module.bert.', 'module.text_projection', 'module.logit_scale')
        )
        for k in raw['state_dict']
    )
    state, fmt, _ = load_state_dict_any(official)
    assert fmt == 'official' and sorted(state) == sorted(model.state_dict())
    # An official file has no config; head counts do not show in shapes, so the merged model's config is given.
    _assert_features(init_model(model.cfg, official), adapted)


def test_merged_hf_folder_loads_in_transformers_and_exports_to_onnx(adapted, tmp_path):
    from transformers import ChineseCLIPModel

    from cnclip_mm.deployment import export_towers
    from tests.test_converters.test_hf import _hf_features

    path, images, ids, expected = adapted
    out = _tool().main([path, '--format', 'hf', '--out', str(tmp_path / 'hf')])
    hf_model = ChineseCLIPModel.from_pretrained(out).eval()
    for a, b in zip(_hf_features(hf_model, ids, images), expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    merged = init_model(checkpoint=out)
    report = export_towers(
        merged, str(tmp_path / 'onnx')
    )  # validated against PyTorch by onnxruntime
    assert osp.isfile(report['image']) and osp.isfile(report['text'])


def test_base_override_and_mismatches(adapted, base_official, tmp_path):
    path = adapted[0]
    tool = _tool()
    out = tool.main([path, '--base', base_official[0], '--out', str(tmp_path / 'merged.pth')])
    assert torch.equal(
        torch.load(out, weights_only=True)['state_dict']['logit_scale'],
        base_official[1]['logit_scale'],
    )
    wrong = tmp_path / 'wrong.pth'
    torch.save(
        dict(state_dict={k: v for k, v in base_official[1].items() if 'ln_post' not in k}), wrong
    )
    with pytest.raises(CheckpointMismatchError, match='ln_post'):
        tool.main([path, '--base', str(wrong), '--out', str(tmp_path / 'never.pth')])
    with pytest.raises(ValueError, match='no "adapters" block'):
        tool.main([base_official[0], '--out', str(tmp_path / 'never.pth')])
