"""Export the image and text towers to two ONNX models (dynamic batch, dynamic text length) and
validate them with onnxruntime against PyTorch.

Each model outputs the L2-normalised features of ``extract_image_feat`` / ``extract_text_feat``:
``image.onnx``: ``images`` float32 ``[N, 3, S, S]`` (normalised) -> ``image_feats`` ``[N, D]``;
``text.onnx``: ``text_ids`` int64 ``[N, L]`` (``L`` up to the context length) -> ``text_feats`` ``[N, D]``.
``meta.json`` beside them records the image size, context length, opset and precision.
"""
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from .ort_backend import OrtBackend

DEFAULT_OPSET = 17
FP32_TOLERANCE = 1e-4
FP16_MIN_COSINE = 0.999


class Tower(nn.Module):
    """One tower as a module for the exporter: ``extract_image_feat`` or ``extract_text_feat``."""

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        self.model = model
        self.extract = model.extract_image_feat if kind == 'image' else model.extract_text_feat

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.extract(inputs)


def export_towers(model: nn.Module, out_dir: str, opset: int = DEFAULT_OPSET, fp16: bool = False,
                  validate: bool = True) -> Dict[str, str]:
    """Write ``image.onnx``, ``text.onnx`` and ``meta.json`` into ``out_dir``.

    Args:
        model: a ``ChineseCLIP`` (moved to CPU, eval mode, fp32 for the export).
        out_dir: output folder.
        opset: ONNX opset version.
        fp16: store the weights in float16 (half the files); they are cast back to float32 inside the
            graph, so CPU inference computes in float32 and features stay within cosine 0.999.
        validate: run both models in onnxruntime at two batch sizes and text lengths and compare with
            PyTorch (fp32: max |diff| <= 1e-4; fp16: cosine >= 0.999 per feature).

    Returns:
        ``{'image': path, 'text': path, 'meta': path}``.
    """
    import onnx
    model = model.float().cpu().eval()
    os.makedirs(out_dir, exist_ok=True)
    size = int(model.image_encoder.img_size)
    context = int(model.tokenizer.context_length) if model.tokenizer is not None else 52
    paths = dict(image=osp.join(out_dir, 'image.onnx'), text=osp.join(out_dir, 'text.onnx'),
                 meta=osp.join(out_dir, 'meta.json'))
    images = torch.randn(2, 3, size, size)
    text_ids = _example_ids(2, context, model.text_encoder.bert.config.vocab_size)
    # The wrappers are put in eval mode too: the exporter restores a wrapper's own mode afterwards, which
    # would otherwise switch the wrapped model (and its dropout) to training.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's tracer and deprecation chatter
        torch.onnx.export(Tower(model, 'image').eval(), (images, ), paths['image'], dynamo=False, opset_version=opset,
                          input_names=['images'], output_names=['image_feats'],
                          dynamic_axes={'images': {0: 'batch'}, 'image_feats': {0: 'batch'}})
        torch.onnx.export(Tower(model, 'text').eval(), (text_ids, ), paths['text'], dynamo=False, opset_version=opset,
                          input_names=['text_ids'], output_names=['text_feats'],
                          dynamic_axes={'text_ids': {0: 'batch', 1: 'length'}, 'text_feats': {0: 'batch'}})
    if fp16:
        for kind in ('image', 'text'):
            proto = onnx.load(paths[kind])
            weights_to_fp16(proto)
            onnx.save(proto, paths[kind])
    meta = dict(image_size=size, context_length=context, embed_dim=int(model.embed_dim), opset=opset,
                precision='fp16-weights' if fp16 else 'fp32')
    with open(paths['meta'], 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=2)
    if validate:
        validate_towers(model, out_dir, fp16=fp16)
    return paths


def weights_to_fp16(proto) -> None:
    """Store every float32 initializer as float16, followed by a Cast back to float32 in the graph."""
    import onnx
    from onnx import helper, numpy_helper
    graph = proto.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + '_fp16')
        init.CopyFrom(half)
        casts.append(helper.make_node('Cast', [init.name], [init.name[:-len('_fp16')]],
                                      to=onnx.TensorProto.FLOAT, name=init.name + '_cast'))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def _example_ids(batch: int, length: int, vocab_size: int, generator: Optional[torch.Generator] = None):
    """``[CLS] random tokens [SEP]`` then padding, with a different true length per row; the first row fills
    the whole length (no padding: the full-context case of a caption that was cut to fit)."""
    ids = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        n = max(2, length - (row * 3) % max(1, length - 2))
        ids[row, 0] = 101
        ids[row, 1:n - 1] = torch.randint(672, min(vocab_size, 8000), (n - 2, ), generator=generator)
        ids[row, n - 1] = 102
    return ids


def validate_towers(model: nn.Module, onnx_dir: str, fp16: bool = False, batches=(1, 7),
                    lengths=None) -> Dict[str, float]:
    """Compare onnxruntime with PyTorch; raise ``AssertionError`` naming the tower and the error.

    Returns:
        The worst max |diff| (fp32) or lowest cosine (fp16) per tower.
    """
    backend = OrtBackend(onnx_dir)
    size = backend.meta['image_size']
    context = backend.meta['context_length']
    lengths = lengths or sorted({min(5, context), context})
    gen = torch.Generator().manual_seed(0)
    report = {}
    with torch.no_grad():
        cases = [('image', torch.randn(b, 3, size, size, generator=gen)) for b in batches]
        cases += [('text', _example_ids(b, n, model.text_encoder.bert.config.vocab_size, gen))
                  for b in batches for n in lengths]
        for kind, inputs in cases:
            ref = (model.extract_image_feat(inputs) if kind == 'image' else model.extract_text_feat(inputs)).float()
            got = backend.image_feats(inputs) if kind == 'image' else backend.text_feats(inputs)
            if fp16:
                worst = float(torch.nn.functional.cosine_similarity(got, ref, dim=-1).min())
                ok = worst >= FP16_MIN_COSINE
                report[kind] = min(report.get(kind, 1.0), worst)
            else:
                worst = float((got - ref).abs().max())
                ok = worst <= FP32_TOLERANCE
                report[kind] = max(report.get(kind, 0.0), worst)
            if not ok:
                raise AssertionError(f'{kind}.onnx disagrees with PyTorch at input shape {tuple(inputs.shape)}: '
                                     f'{"min cosine" if fp16 else "max |diff|"} {worst:.6g}')
    return report


def ort_backend_for(model: nn.Module, onnx_dir: Optional[str] = None) -> OrtBackend:
    """An :class:`OrtBackend` on the towers in ``onnx_dir``, exporting ``model`` there first when the folder
    holds none (a temporary folder when ``onnx_dir`` is None)."""
    if onnx_dir is None:
        onnx_dir = tempfile.mkdtemp(prefix='cnclip_onnx_')
    if not osp.isfile(osp.join(onnx_dir, 'meta.json')):
        export_towers(model, onnx_dir)
    return OrtBackend(onnx_dir)
