"""Inference helpers: image preprocessing and feature encoding for retrieval apps (zero-shot
classification: :class:`~cnclip_mm.apis.ZeroShotClassificationInferencer`)."""
import os
from contextlib import contextmanager
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnclip_mm.cpu import bf16_autocast
from cnclip_mm.cpu import cpu_speed as cpu_speed_block

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


def _image_size(model: nn.Module) -> int:
    size = getattr(getattr(model, 'image_encoder', None), 'img_size', None)
    if size is None:
        raise AttributeError(f'{type(model).__name__} has no image_encoder.img_size to resize to')
    return int(size)


def _to_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f'image file {os.fspath(image)!r} does not exist')
        with Image.open(image) as img:
            return img.convert('RGB')
    if isinstance(image, Image.Image):
        return image.convert('RGB')
    if isinstance(image, np.ndarray):
        # HWC RGB (or HW grey); uint8, or floats in [0, 1].
        array = image
        if array.dtype != np.uint8:
            array = np.clip(np.asarray(array, dtype=np.float64) * 255.0, 0, 255).round().astype(np.uint8)
        if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
            return Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[2] == 1
                                   else array).convert('RGB')
        raise ValueError(f'numpy images must be HxW or HxWxC (C in 1, 3, 4), got shape {array.shape}')
    raise TypeError(f'unsupported image type {type(image).__name__}: give a path, a PIL image or an array')


def resize_images(model: nn.Module, images: Sequence[ImageLike]) -> torch.Tensor:
    """The host half of :func:`preprocess_images`: RGB, bicubic resize to the model's square size.

    Returns:
        uint8 images ``[N, 3, S, S]`` on the CPU (a quarter of the float bytes to move to the device).
    """
    size = _image_size(model)
    arrays = [np.asarray(_to_pil(img).resize((size, size), Image.BICUBIC)) for img in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def preprocess_images(model: nn.Module, images: Sequence[ImageLike]) -> torch.Tensor:
    """Official eval preprocessing: RGB, bicubic resize to the model's square size, CLIP mean/std.

    Returns:
        Normalised float images ``[N, 3, S, S]`` on the model's device.
    """
    return model.data_preprocessor.normalize(resize_images(model, images))


@contextmanager
def _inference_context(model: nn.Module, bf16: bool, cpu_speed: Union[str, bool]):
    """bf16 autocast on the model's device when asked (opt-in: cosine >= 0.999 to fp32; CPU bf16
    matmuls as :func:`cnclip_mm.cpu.bf16_gemm_context` ``'auto'`` picks), inside
    :func:`cnclip_mm.cpu.cpu_speed` (``'auto'``: on for a model on a CPU) at the caller's thread count
    (``torch.set_num_threads`` stays the user's to set around an inference call)."""
    device = next(model.parameters()).device
    with cpu_speed_block(cpu_speed, device, threads=torch.get_num_threads()), \
            bf16_autocast(device.type, enabled=bf16):
        yield


@torch.no_grad()
def encode_images(model: nn.Module, images: Sequence[ImageLike], batch_size: int = 32,
                  bf16: bool = False, cpu_speed: Union[str, bool] = 'auto') -> torch.Tensor:
    """L2-normalised image features ``[N, D]`` (CPU) of paths / PIL images / arrays; ``bf16``: autocast;
    ``cpu_speed``: the CPU fast paths (:func:`cnclip_mm.cpu.cpu_speed`: ``'auto'``, True or False)."""
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        images = [images]
    model.eval()
    with _inference_context(model, bf16, cpu_speed):
        feats = [model.extract_image_feat(preprocess_images(model, images[i:i + batch_size])).float().cpu()
                 for i in range(0, len(images), batch_size)]
    return torch.cat(feats) if feats else torch.empty(0, model.embed_dim)


@torch.no_grad()
def encode_texts(model: nn.Module, texts: Sequence[str], batch_size: int = 256,
                 bf16: bool = False, cpu_speed: Union[str, bool] = 'auto') -> torch.Tensor:
    """L2-normalised text features ``[N, D]`` (CPU), tokenised with the model's tokenizer; ``bf16``: autocast;
    ``cpu_speed``: the CPU fast paths (:func:`cnclip_mm.cpu.cpu_speed`: ``'auto'``, True or False).

    The texts are batched in order of token count, each batch trimmed to its longest text on the CPU
    (:func:`~cnclip_mm.models.text_encoders.trim_padding`), so short texts do not pay for long ones; the
    features come back in the order of ``texts``.
    """
    from cnclip_mm.models.text_encoders import trim_padding
    if isinstance(texts, str):
        texts = [texts]
    model.eval()
    feats = torch.empty(len(texts), model.embed_dim)
    if not len(texts):
        return feats
    ids = model.tokenize(list(texts))
    pad = model.text_encoder.pad_token_id
    order = (ids != pad).sum(1).argsort(stable=True)
    with _inference_context(model, bf16, cpu_speed):
        for rows in order.split(batch_size):
            feats[rows] = model.extract_text_feat(trim_padding(ids[rows], pad)).float().cpu()
    return feats
