"""Features from the exported towers with onnxruntime: the ``'onnxruntime'`` inferencer backend."""
import collections
import json
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn


class OrtBackend:
    """Run ``image.onnx`` / ``text.onnx`` from ``onnx_dir`` (see :func:`export_towers`) on CPU.

    Sessions apply all of onnxruntime's graph optimisations (constant folding, LayerNorm / GELU / MatMul
    scale fusions, weight pre-packing) and run the nodes one after another: a tower is a chain, so
    ``num_threads`` goes to the work inside each node.

    Args:
        onnx_dir: the export folder.
        providers: onnxruntime execution providers (default: CPU).
        num_threads: intra-op threads (default: onnxruntime's choice).
        profile_prefix: write onnxruntime's per-node profile of each session to
            ``<profile_prefix>_<image|text>_<time>.json`` (paths from :meth:`end_profiling`; read them
            with :func:`op_time_shares`).
    """

    name = 'onnxruntime'

    def __init__(self, onnx_dir: str, providers=('CPUExecutionProvider', ), num_threads: Optional[int] = None,
                 profile_prefix: Optional[str] = None):
        import onnxruntime as ort
        missing = [f for f in ('image.onnx', 'text.onnx', 'meta.json') if not osp.isfile(osp.join(onnx_dir, f))]
        if missing:
            raise FileNotFoundError(f'{onnx_dir} lacks {missing}: export with tools/deployment/export_onnx.py')
        with open(osp.join(onnx_dir, 'meta.json'), encoding='utf-8') as f:
            self.meta = json.load(f)
        sessions = {}
        for kind in ('image', 'text'):
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.inter_op_num_threads = 1
            if num_threads:
                options.intra_op_num_threads = num_threads
            if profile_prefix:
                options.enable_profiling = True
                options.profile_file_prefix = f'{profile_prefix}_{kind}'
            sessions[kind] = ort.InferenceSession(osp.join(onnx_dir, f'{kind}.onnx'), options,
                                                  providers=list(providers))
        self.image_session, self.text_session = sessions['image'], sessions['text']

    def image_feats(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.image_session.run(None, {'images': array})[0]).float()

    def text_feats(self, text_ids: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(text_ids.detach().cpu().numpy(), dtype=np.int64)
        return torch.from_numpy(self.text_session.run(None, {'text_ids': array})[0]).float()

    def end_profiling(self) -> Dict[str, str]:
        """Stop profiling (``profile_prefix``) and return the profile file of each tower."""
        return {'image': self.image_session.end_profiling(), 'text': self.text_session.end_profiling()}


def op_time_shares(profile_path: str) -> Dict[str, float]:
    """Share of the kernel time per operator type (after onnxruntime's fusions) in an onnxruntime
    profile, largest first: where the time of a tower goes."""
    with open(profile_path, encoding='utf-8') as f:
        events = json.load(f)
    per_op = collections.Counter()
    for event in events:
        if event.get('cat') == 'Node' and event.get('name', '').endswith('_kernel_time'):
            per_op[event['args']['op_name']] += event['dur']
    total = sum(per_op.values())
    if not total:
        raise ValueError(f'{profile_path} holds no kernel times: run the session before end_profiling()')
    return {op: dur / total for op, dur in per_op.most_common()}


def route_features(model: nn.Module, backend: OrtBackend) -> nn.Module:
    """Make ``model.extract_image_feat`` / ``extract_text_feat`` run through ``backend``, so code built on
    the model's predict mode (test loops, feature extraction) uses onnxruntime unchanged."""
    model.extract_image_feat = backend.image_feats
    model.extract_text_feat = backend.text_feats
    return model
