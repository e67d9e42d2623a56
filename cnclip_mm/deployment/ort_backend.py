"""Features from the exported towers with onnxruntime: the ``'onnxruntime'`` inferencer backend."""
import json
import os.path as osp
from typing import Optional

import numpy as np
import torch
from torch import nn


class OrtBackend:
    """Run ``image.onnx`` / ``text.onnx`` from ``onnx_dir`` (see :func:`export_towers`) on CPU.

    Args:
        onnx_dir: the export folder.
        providers: onnxruntime execution providers (default: CPU).
        num_threads: intra-op threads (default: onnxruntime's choice).
    """

    name = 'onnxruntime'

    def __init__(self, onnx_dir: str, providers=('CPUExecutionProvider', ), num_threads: Optional[int] = None):
        import onnxruntime as ort
        missing = [f for f in ('image.onnx', 'text.onnx', 'meta.json') if not osp.isfile(osp.join(onnx_dir, f))]
        if missing:
            raise FileNotFoundError(f'{onnx_dir} lacks {missing}: export with tools/deployment/export_onnx.py')
        with open(osp.join(onnx_dir, 'meta.json'), encoding='utf-8') as f:
            self.meta = json.load(f)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.image_session = ort.InferenceSession(osp.join(onnx_dir, 'image.onnx'), options,
                                                  providers=list(providers))
        self.text_session = ort.InferenceSession(osp.join(onnx_dir, 'text.onnx'), options,
                                                 providers=list(providers))

    def image_feats(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.image_session.run(None, {'images': array})[0]).float()

    def text_feats(self, text_ids: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(text_ids.detach().cpu().numpy(), dtype=np.int64)
        return torch.from_numpy(self.text_session.run(None, {'text_ids': array})[0]).float()


def route_features(model: nn.Module, backend: OrtBackend) -> nn.Module:
    """Make ``model.extract_image_feat`` / ``extract_text_feat`` run through ``backend``, so code built on
    the model's predict mode (test loops, feature extraction) uses onnxruntime unchanged."""
    model.extract_image_feat = backend.image_feats
    model.extract_text_feat = backend.text_feats
    return model
