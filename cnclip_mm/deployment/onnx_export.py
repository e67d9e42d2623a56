"""Export the image and text towers to two ONNX models (dynamic batch, dynamic text length) and
validate them with onnxruntime against PyTorch.

Each model outputs the L2-normalised features of ``extract_image_feat`` / ``extract_text_feat``:
``image.onnx``: ``images`` float32 ``[N, 3, S, S]`` (normalised) -> ``image_feats`` ``[N, D]``;
``text.onnx``: ``text_ids`` int64 ``[N, L]`` (``L`` up to the context length) -> ``text_feats`` ``[N, D]``.
``meta.json`` beside them records the image size, context length, opset and precision (``fp32``;
``fp16``: float16 weights, float32 compute; ``int8``: onnxruntime's dynamic quantisation of the MatMuls).
"""
import json
import os
import os.path as osp
import shutil
import tempfile
import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

from .ort_backend import OrtBackend

DEFAULT_OPSET = 17
FP32_TOLERANCE = 1e-4
FP16_MIN_COSINE = 0.999
# Dynamic int8 MatMuls (per-channel int8 weights, per-call uint8 activations): a ViT-B/16 (random weights)
# measured cosine 0.9999 (image) and 0.9997 (text) against fp32 PyTorch, the tiny test model 0.9999; 0.99 leaves
# room for trained weights, whose activation outliers quantise less well.
INT8_MIN_COSINE = 0.99
PRECISIONS = ('fp32', 'fp16', 'int8')
MIN_COSINE = {'fp16': FP16_MIN_COSINE, 'int8': INT8_MIN_COSINE}


class TraceFrozeValueError(RuntimeError):
    """The exporter's tracer warned (``TracerWarning``) that it keeps a value of the example as a constant."""


class Tower(nn.Module):
    """One tower as a module for the exporter: ``extract_image_feat`` or ``extract_text_feat``."""

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        self.model = model
        self.extract = model.extract_image_feat if kind == 'image' else model.extract_text_feat

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.extract(inputs)


def export_towers(model: nn.Module, out_dir: str, opset: int = DEFAULT_OPSET, precision: str = 'fp32',
                  validate: bool = True) -> Dict[str, Any]:
    """Write ``image.onnx``, ``text.onnx`` and ``meta.json`` into ``out_dir``.

    The files are written to a temporary folder beside ``out_dir`` and moved into place only once the
    export (and validation) succeeded, so a failed export leaves ``out_dir`` as it was. A tracer warning
    (a value the trace would freeze) raises :class:`TraceFrozeValueError` instead of producing a graph that
    is right only for the example input.

    Args:
        model: a ``ChineseCLIP`` (moved to CPU, eval mode, fp32 for the export).
        out_dir: output folder.
        opset: ONNX opset version.
        precision: ``'fp32'``; ``'fp16'`` stores the weights in float16 (half the files), cast back to
            float32 inside the graph, so CPU inference computes in float32 (cosine >= 0.999);
            ``'int8'`` runs onnxruntime's ``quantize_dynamic`` on the fp32 graph: the weights of every
            MatMul in int8 per output channel, activations quantised per call (a quarter of the files,
            integer MatMul kernels; cosine >= 0.99).
        validate: run both models in onnxruntime on inputs other than the tracing example (batch 1 and 7;
            short, middle and full-context texts) and compare with PyTorch (fp32: max |diff| <= 1e-4;
            fp16 / int8: cosine per feature >= ``MIN_COSINE[precision]``).

    Returns:
        ``{'image': path, 'text': path, 'meta': path}``, plus ``'report'`` (see :func:`validate_towers`)
        when validated.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    model = model.float().cpu().eval()
    out_dir = osp.abspath(out_dir)
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f'.{osp.basename(out_dir)}.partial-', dir=parent)
    try:
        _export_into(model, work, opset, precision)
        report = validate_towers(model, work) if validate else None
        os.makedirs(out_dir, exist_ok=True)
        paths = {}
        for kind, name in (('image', 'image.onnx'), ('text', 'text.onnx'), ('meta', 'meta.json')):
            paths[kind] = osp.join(out_dir, name)  # meta.json last: it marks a complete export
            os.replace(osp.join(work, name), paths[kind])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if report is not None:
        paths['report'] = report
    return paths


def _export_into(model: nn.Module, folder: str, opset: int, precision: str) -> None:
    import onnx
    size = int(model.image_encoder.img_size)
    context = int(model.tokenizer.context_length) if model.tokenizer is not None else 52
    images = torch.randn(2, 3, size, size)
    text_ids = _example_ids(2, context, _vocab_size(model))
    towers = (('image', images, 'images', 'image_feats', {'images': {0: 'batch'}, 'image_feats': {0: 'batch'}}),
              ('text', text_ids, 'text_ids', 'text_feats',
               {'text_ids': {0: 'batch', 1: 'length'}, 'text_feats': {0: 'batch'}}))
    for kind, example, input_name, output_name, axes in towers:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', torch.jit.TracerWarning)
            # The TorchScript exporter announces its own deprecation on every call.
            warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'torch\.onnx')
            warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export')
            # The wrapper is put in eval mode too: the exporter restores a wrapper's own mode afterwards,
            # which would otherwise switch the wrapped model (and its dropout) to training.
            torch.onnx.export(Tower(model, kind).eval(), (example, ), osp.join(folder, f'{kind}.onnx'),
                              dynamo=False, opset_version=opset, input_names=[input_name],
                              output_names=[output_name], dynamic_axes=axes)
        frozen = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
        for w in caught:
            if w not in frozen:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if frozen:
            raise TraceFrozeValueError(
                f'the {kind} tower reads values the trace would freeze at the example input, so the graph would '
                'be wrong for other inputs: ' + '; '.join(f'{w.filename}:{w.lineno}: {w.message}' for w in frozen))
        path = osp.join(folder, f'{kind}.onnx')
        if precision == 'fp16':
            proto = onnx.load(path)
            weights_to_fp16(proto)
            onnx.save(proto, path)
        elif precision == 'int8':
            quantize_matmuls(path)
    meta = dict(image_size=size, context_length=context, embed_dim=int(model.embed_dim), opset=opset,
                precision=precision)
    with open(osp.join(folder, 'meta.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=2)


def _vocab_size(model: nn.Module) -> int:
    return int(model.text_encoder.bert.config.vocab_size)


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


def quantize_matmuls(path: str) -> None:
    """Replace the fp32 model at ``path`` by onnxruntime's dynamic int8 quantisation of its MatMuls.

    Weights become int8 per output channel (symmetric); activations are quantised to uint8 on every call
    from their own range, so no calibration data is needed. Other ops stay float32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    fp32_path = path + '.fp32'
    os.replace(path, fp32_path)
    quantize_dynamic(fp32_path, path, op_types_to_quantize=['MatMul'], per_channel=True,
                     weight_type=QuantType.QInt8)
    os.remove(fp32_path)


def _example_ids(batch: int, length: int, vocab_size: int, generator: Optional[torch.Generator] = None):
    """``[CLS] random tokens [SEP]`` then padding, with a different true length per row; the first row fills
    the whole length (no padding: the full-context case of a caption that was cut to fit).

    Tokens are drawn from the ids after the BERT special ones ([PAD] 0 ... [MASK] 103) of a vocabulary of
    ``vocab_size`` entries (any size, e.g. the demo's char vocab), never padding.
    """
    if vocab_size < 2:
        raise ValueError(f'a text tower needs a vocabulary of at least 2 ids, got {vocab_size}')
    cls_id, sep_id = (101, 102) if vocab_size > 104 else (1, 1)
    low = 104 if vocab_size > 104 else 1
    ids = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        n = max(2, length - (row * 3) % max(1, length - 2))
        ids[row, 0] = cls_id
        ids[row, 1:n - 1] = torch.randint(low, vocab_size, (n - 2, ), generator=generator)
        ids[row, n - 1] = sep_id
    return ids


def validate_towers(model: nn.Module, onnx_dir: str, batches=(1, 7), lengths=None) -> Dict[str, float]:
    """Compare onnxruntime with PyTorch at batch sizes ``batches`` and text ``lengths`` (default: short,
    middle and the context length); raise ``AssertionError`` naming the tower and the error.

    The check follows the export's ``meta.json`` precision: fp32 max |diff| <= ``FP32_TOLERANCE``, fp16 /
    int8 cosine per feature >= ``MIN_COSINE[precision]``.

    Returns:
        The worst max |diff| (fp32) or lowest cosine (fp16, int8) per tower.
    """
    backend = OrtBackend(onnx_dir)
    min_cosine = MIN_COSINE.get(backend.meta.get('precision', 'fp32'))
    size = backend.meta['image_size']
    context = backend.meta['context_length']
    # Lengths other than the tracing example's (the context): short, middle and full (no padding in the
    # first row), so a length frozen into the graph cannot pass.
    lengths = lengths or sorted({min(3, context), context // 2 + 1, context})
    gen = torch.Generator().manual_seed(0)
    report = {}
    with torch.no_grad():
        cases = [('image', torch.randn(b, 3, size, size, generator=gen)) for b in batches]
        cases += [('text', _example_ids(b, n, _vocab_size(model), gen))
                  for b in batches for n in lengths]
        for kind, inputs in cases:
            ref = (model.extract_image_feat(inputs) if kind == 'image' else model.extract_text_feat(inputs)).float()
            got = backend.image_feats(inputs) if kind == 'image' else backend.text_feats(inputs)
            if min_cosine is not None:
                worst = float(torch.nn.functional.cosine_similarity(got, ref, dim=-1).min())
                ok = worst >= min_cosine
                report[kind] = min(report.get(kind, 1.0), worst)
            else:
                worst = float((got - ref).abs().max())
                ok = worst <= FP32_TOLERANCE
                report[kind] = max(report.get(kind, 0.0), worst)
            if not ok:
                raise AssertionError(f'{kind}.onnx disagrees with PyTorch at input shape {tuple(inputs.shape)}: '
                                     f'{"min cosine" if min_cosine else "max |diff|"} {worst:.6g}'
                                     + (f' < {min_cosine}' if min_cosine else f' > {FP32_TOLERANCE}'))
    return report


def ort_backend_for(model: nn.Module, onnx_dir: Optional[str] = None) -> OrtBackend:
    """An :class:`OrtBackend` on the towers in ``onnx_dir``, exporting ``model`` there first when the folder
    holds none (a temporary folder when ``onnx_dir`` is None)."""
    if onnx_dir is None:
        onnx_dir = tempfile.mkdtemp(prefix='cnclip_onnx_')
    if not osp.isfile(osp.join(onnx_dir, 'meta.json')):
        export_towers(model, onnx_dir)
    return OrtBackend(onnx_dir)
