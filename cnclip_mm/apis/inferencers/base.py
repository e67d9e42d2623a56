"""What every inferencer shares: model by name or config, input expansion, batching, feature backends."""
import glob
import os
import os.path as osp
from typing import Any, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnclip_mm.apis.inference import ImageLike, _inference_context, _to_pil, preprocess_images

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.gif')
BACKENDS = ('pytorch', 'onnxruntime')


def expand_images(inputs: Union[ImageLike, Sequence[ImageLike]]) -> List[ImageLike]:
    """Flatten inputs into single images: a folder gives its image files (recursively, sorted), a path
    with ``*?[`` a glob, a 4-D array a batch of HWC images; files, PIL images and arrays stay as they are."""
    if isinstance(inputs, (str, os.PathLike, Image.Image)) or (isinstance(inputs, np.ndarray) and inputs.ndim < 4):
        inputs = [inputs]
    out: List[ImageLike] = []
    for item in inputs:
        if isinstance(item, np.ndarray) and item.ndim == 4:
            out.extend(item)
        elif isinstance(item, (str, os.PathLike)) and osp.isdir(item):
            found = sorted(p for p in glob.glob(osp.join(os.fspath(item), '**', '*'), recursive=True)
                           if p.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'folder {os.fspath(item)!r} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
            out.extend(found)
        elif isinstance(item, str) and glob.has_magic(item):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise FileNotFoundError(f'no file matches {item!r}')
            out.extend(found)
        else:
            out.append(item)
    return out


def batches(items: Sequence[Any], batch_size: int, desc: str) -> Iterator[Sequence[Any]]:
    """Consecutive chunks with a progress bar once there is more than one chunk."""
    from tqdm import tqdm
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc=desc, unit='batch', disable=len(starts) <= 1):
        yield items[start:start + batch_size]


class TorchBackend:
    """L2-normalised features from the PyTorch model (``extract_image_feat`` / ``extract_text_feat``), inside
    :func:`cnclip_mm.cpu.cpu_speed` (``'auto'``: on for a model on a CPU)."""

    name = 'pytorch'

    def __init__(self, model: nn.Module, cpu_speed: Union[str, bool] = 'auto'):
        self.model = model
        self.cpu_speed = cpu_speed

    @torch.no_grad()
    def image_feats(self, images: torch.Tensor) -> torch.Tensor:
        with _inference_context(self.model, False, self.cpu_speed):
            return self.model.extract_image_feat(images).float().cpu()

    @torch.no_grad()
    def text_feats(self, text_ids: torch.Tensor) -> torch.Tensor:
        from cnclip_mm.models.text_encoders import trim_padding
        text_ids = trim_padding(text_ids, self.model.text_encoder.pad_token_id)
        with _inference_context(self.model, False, self.cpu_speed):
            return self.model.extract_text_feat(text_ids.to(self.model.text_projection.device)).float().cpu()


def build_backend(model: nn.Module, backend: Any, onnx_dir: Optional[str], cpu_speed: Union[str, bool] = 'auto'):
    """A backend by name, or ``backend`` itself when it is a built one (a service shares its own)."""
    if hasattr(backend, 'image_feats') and hasattr(backend, 'text_feats'):
        return backend
    if backend == 'pytorch':
        return TorchBackend(model, cpu_speed)
    if backend == 'onnxruntime':
        from cnclip_mm.deployment import ort_backend_for
        return ort_backend_for(model, onnx_dir)
    raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')


class BaseInferencer:
    """``__call__(inputs, batch_size=..., show_dir=...)`` = preprocess -> forward -> postprocess per batch.

    Args:
        model: a built ``ChineseCLIP``, a model name (:func:`cnclip_mm.apis.list_models`) or a config.
        pretrained: as for :func:`cnclip_mm.apis.get_model` (``True``: the named release; path / URL).
        device: where the PyTorch model runs.
        backend: ``'pytorch'`` or ``'onnxruntime'`` (towers exported by tools/deployment/export_onnx.py
            into ``onnx_dir``, or exported there / to a temporary folder on first use), or a built backend
            to share.
        onnx_dir: folder with ``image.onnx`` / ``text.onnx``.
        vocab_file: tokenizer vocabulary override.
        batch_size: default items per forward pass.
        cpu_speed: the CPU fast paths of the PyTorch backend (:func:`cnclip_mm.cpu.cpu_speed`): ``'auto'``
            (on for a CPU device), True or False.
        context_length: token ids per text for a model built here (default: its config's, 52 for released
            weights; up to the text tower's 512 positions).
        calibration: a file from tools/analysis/calibrate.py (or a ``Calibration``) fitted for this model:
            results then carry the match probability ``sigmoid(a * cosine + b)`` beside the raw score.
        threshold: drop matches (classes, for zero-shot) below it, counted in ``num_dropped``; it compares the
            calibrated probability when ``calibration`` is set, else the raw cosine (docs/calibration.md).
    """

    def __init__(self, model: Any, pretrained: Union[bool, str] = False, device: str = 'cpu',
                 backend: str = 'pytorch', onnx_dir: Optional[str] = None, vocab_file: Optional[str] = None,
                 batch_size: int = 32, cpu_speed: Union[str, bool] = 'auto',
                 context_length: Optional[int] = None, calibration: Any = None,
                 threshold: Optional[float] = None) -> None:
        if isinstance(model, nn.Module):
            if pretrained:
                from cnclip_mm.models.converters import load_checkpoint
                from cnclip_mm.models.zoo import resolve_weights
                load_checkpoint(model, resolve_weights(pretrained), strict=True)
            self.model = model.to(device).eval()
        else:
            from cnclip_mm.models.zoo import get_model
            self.model = get_model(model, pretrained=pretrained, device=device, vocab_file=vocab_file,
                                   context_length=context_length)
        self.backend = build_backend(self.model, backend, onnx_dir, cpu_speed)
        self.batch_size = batch_size
        from cnclip_mm.evaluation.calibration import load_calibration
        self.calibration = None if calibration is None else load_calibration(calibration, self.model)
        self.threshold = threshold

    def score_filter(self, cosines: torch.Tensor):
        """``(probabilities or None, kept or None)`` of cosines: probabilities when calibrated; ``kept`` marks
        those at or above the threshold (on the probability when calibrated, else on the cosine), when set."""
        probs = None if self.calibration is None else self.calibration(cosines.float())
        kept = None if self.threshold is None else (cosines if probs is None else probs) >= self.threshold
        return probs, kept

    def image_features(self, images: Sequence[ImageLike], batch_size: Optional[int] = None) -> torch.Tensor:
        """``[N, D]`` L2-normalised features of single images (see :func:`expand_images`)."""
        feats = [self.backend.image_feats(preprocess_images(self.model, chunk))
                 for chunk in batches(images, batch_size or self.batch_size, 'images')]
        return torch.cat(feats) if feats else torch.empty(0, self.model.embed_dim)

    def text_features(self, texts: Sequence[str], batch_size: Optional[int] = None) -> torch.Tensor:
        """``[N, D]`` L2-normalised features of texts, tokenised by the model's tokenizer."""
        feats = [self.backend.text_feats(self.model.tokenize(list(chunk)))
                 for chunk in batches(list(texts), batch_size or 256, 'texts')]
        return torch.cat(feats) if feats else torch.empty(0, self.model.embed_dim)

    def __call__(self, inputs: Any, batch_size: Optional[int] = None, show_dir: Optional[str] = None,
                 **kwargs) -> List[dict]:
        items = self.preprocess_inputs(inputs)
        results: List[dict] = []
        for chunk in batches(items, batch_size or self.batch_size, type(self).__name__):
            results += self.postprocess(self.forward(self.preprocess(chunk)), chunk, **kwargs)
        if show_dir:
            self.visualize(items, results, show_dir)
        return results

    def preprocess_inputs(self, inputs: Any) -> List[Any]:
        return expand_images(inputs)

    def preprocess(self, chunk: Sequence[Any]) -> torch.Tensor:
        return preprocess_images(self.model, chunk)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.backend.image_feats(batch)

    def postprocess(self, feats: torch.Tensor, chunk: Sequence[Any], **kwargs) -> List[dict]:
        raise NotImplementedError

    def visualize(self, items: Sequence[Any], results: List[dict], show_dir: str) -> List[str]:
        raise NotImplementedError(f'{type(self).__name__} draws no pictures')


def display_image(item: ImageLike) -> np.ndarray:
    """HWC uint8 RGB array of an input, for pictures."""
    return np.asarray(_to_pil(item))


def item_name(item: Any, index: int) -> str:
    return osp.basename(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else f'input_{index}'
