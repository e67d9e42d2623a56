"""ONNX export: fp16 weights, the export tool by name and the onnxruntime backends of the inferencers and
feature extraction agree with PyTorch (fp32 exports of each architecture: test_export_fresh.py)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_mm.apis import FeatureExtractor, ZeroShotClassificationInferencer
from cnclip_mm.deployment import OrtBackend, export_towers, op_time_shares, validate_towers
from cnclip_mm.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import load_tool  # noqa: E402


def _model(cfg):
    torch.manual_seed(0)  # cfg: the tests' tiny model (context length 52)
    return MODELS.build(cfg).eval()


def test_fp16_weights_cosine(tmp_path, tiny_model_cfg):
    model = _model(tiny_model_cfg)
    export_towers(model, str(tmp_path / 'fp32'), validate=False)
    export_towers(model, str(tmp_path / 'fp16'), precision='fp16', validate=False)
    report = validate_towers(model, str(tmp_path / 'fp16'), lengths=[5, 52])
    assert report['image'] >= 0.999 and report['text'] >= 0.999
    size32 = (tmp_path / 'fp32' / 'text.onnx').stat().st_size
    assert (tmp_path / 'fp16' / 'text.onnx').stat().st_size < 0.6 * size32


def test_int8_export_cosine_meta_and_inferencer(tmp_path, tiny_model_cfg):
    """--precision int8: onnxruntime's dynamic quantisation of the MatMuls, validated by cosine at export
    (batch 1 and 7, short to full-context texts); meta.json says int8 and an inferencer runs on it."""
    import onnx

    from cnclip_mm.deployment.onnx_export import INT8_MIN_COSINE, PRECISIONS
    model = _model(tiny_model_cfg)
    out = tmp_path / 'int8'
    tool = load_tool('deployment/export_onnx.py')
    assert tool.PRECISIONS == PRECISIONS
    paths = export_towers(model, str(out), precision='int8')
    assert INT8_MIN_COSINE <= min(paths['report'].values()) < 1.0  # quantised, so not exact
    assert json.loads((out / 'meta.json').read_text())['precision'] == 'int8'
    graph = onnx.load(str(out / 'image.onnx')).graph
    weights = {init.name for init in graph.initializer}
    assert any(node.op_type == 'MatMulInteger' for node in graph.node)
    # Only attention's activation x activation products stay float32 MatMuls.
    assert not [node.name for node in graph.node if node.op_type == 'MatMul' and set(node.input) & weights]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['int8']  # no partial folder or .fp32 file left
    assert sorted(p.name for p in out.iterdir()) == ['image.onnx', 'meta.json', 'text.onnx']
    classes = ['猫', '狗', '鸟']
    kwargs = dict(classes=classes, templates=['一张{}的照片'])
    images = [Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))]
    torch_res = ZeroShotClassificationInferencer(model, **kwargs)(images)
    ort_res = ZeroShotClassificationInferencer(model, backend='onnxruntime', onnx_dir=str(out), **kwargs)(images)
    assert np.abs(np.asarray(torch_res[0]['pred_scores']) - np.asarray(ort_res[0]['pred_scores'])).max() < 0.05
    with pytest.raises(ValueError, match="precision must be one of .*'int4'"):
        export_towers(model, str(tmp_path / 'bad'), precision='int4')


def test_profile_shares(tmp_path, tiny_model_cfg):
    """OrtBackend(profile_prefix=...) writes a profile per tower; the shares name the graph's ops, sum to 1."""
    export_towers(_model(tiny_model_cfg), str(tmp_path / 'onnx'), validate=False)
    backend = OrtBackend(str(tmp_path / 'onnx'), num_threads=1, profile_prefix=str(tmp_path / 'prof'))
    backend.image_feats(torch.randn(1, 3, backend.meta['image_size'], backend.meta['image_size']))
    paths = backend.end_profiling()
    assert Path(paths['image']).name.startswith('prof_image')
    shares = op_time_shares(paths['image'])
    assert {'MatMul', 'Softmax'} <= set(shares) and sum(shares.values()) == pytest.approx(1.0)
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
    with pytest.raises(ValueError, match='no kernel times'):
        op_time_shares(paths['text'])  # the text session never ran


def test_export_tool_and_onnxruntime_backend(tmp_path, zoo):
    """tools/deployment/export_onnx.py NAME --out-dir D; inferencers with backend='onnxruntime' agree."""
    from zoo_fixtures import TINY_NAME
    out = tmp_path / 'onnx'
    load_tool('deployment/export_onnx.py').main([TINY_NAME, '--out-dir', str(out), '--opset', '17'])
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(3)]
    classes = ['猫', '狗', '鸟']
    kwargs = dict(classes=classes, templates=['一张{}的照片'])
    torch_res = ZeroShotClassificationInferencer(TINY_NAME, pretrained=True, **kwargs)(images)
    ort_res = ZeroShotClassificationInferencer(TINY_NAME, pretrained=True, backend='onnxruntime',
                                               onnx_dir=str(out), **kwargs)(images)
    for a, b in zip(torch_res, ort_res):
        assert a['pred_label'] == b['pred_label']
        np.testing.assert_allclose(a['pred_scores'], b['pred_scores'], atol=1e-4)
    feats = FeatureExtractor(zoo['model'], backend='onnxruntime', onnx_dir=str(out))(['一只猫'], modality='text')
    with torch.no_grad():
        assert float((feats[0]['text_feat'] - zoo['model'].extract_text_feat(['一只猫'])[0]).abs().max()) <= 1e-4


def test_extract_features_onnxruntime_backend(tmp_path, vocab_file):
    from eval_fixtures import tiny_test_config, write_retrieval_tsv
    from mmengine.config import Config
    write_retrieval_tsv(str(tmp_path / 'coco'), split='test', num_images=5, seed=2)
    cfg = tiny_test_config(tmp_path, 'retrieval_coco-cn_vit-b-16.py', str(tmp_path / 'coco'), vocab_file,
                           retrieval=True)
    torch.manual_seed(1)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(cfg).model).state_dict()), ckpt)
    tool = load_tool('analysis/extract_features.py')
    tool.main([cfg, str(ckpt), '--out-dir', str(tmp_path / 'pt'), '--device', 'cpu'])
    tool.main([cfg, str(ckpt), '--out-dir', str(tmp_path / 'ort'), '--device', 'cpu', '--backend', 'onnxruntime',
               '--onnx-dir', str(tmp_path / 'onnx')])
    assert (tmp_path / 'onnx' / 'text.onnx').is_file()
    for kind in ('image', 'text'):
        pt, ort = (np.load(tmp_path / d / f'{kind}_feats.npy') for d in ('pt', 'ort'))
        assert pt.shape == ort.shape and np.abs(pt - ort).max() <= 1e-4
        assert (tmp_path / 'pt' / f'{kind}_ids.jsonl').read_text() == (tmp_path / 'ort' / f'{kind}_ids.jsonl').read_text()
