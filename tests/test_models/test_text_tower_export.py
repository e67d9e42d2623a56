"""The exported text graph has a dynamic length axis and nothing frozen at the example's length: a caption
that fills the whole context (no padding) and trimmed batches give PyTorch's features in onnxruntime."""
import onnx
import torch

from cnclip_mm.deployment import OrtBackend, export_towers
from cnclip_mm.deployment.onnx_export import _example_ids
from cnclip_mm.registry import MODELS


def test_full_length_and_trimmed_captions_match_pytorch(tmp_path, tiny_model_cfg):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg).eval()
    export_towers(model, str(tmp_path), validate=False)
    dims = onnx.load(str(tmp_path / 'text.onnx')).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ['batch', 'length']
    backend = OrtBackend(str(tmp_path))
    full = torch.randint(672, 8000, (3, 52), generator=torch.Generator().manual_seed(1))
    full[:, 0], full[:, -1] = 101, 102  # [CLS] ... [SEP] over all 52 positions: no padding at all
    texts = model.tokenizer(['红色圆形', '一张在夜晚拍摄的城市街道照片'])
    for ids in (full, full[:1], texts, texts[:, :16], _example_ids(4, 9, 21128)):
        with torch.no_grad():
            expect = model.extract_text_feat(ids)
        torch.testing.assert_close(backend.text_feats(ids), expect, atol=1e-4, rtol=0)
