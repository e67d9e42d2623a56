"""The model side of the service: the model, its feature backend and the batched calls the worker runs."""
import os
from typing import Optional, Tuple, Union

import torch
from torch import nn

from cnclip_mm.apis.inference import resize_images
from cnclip_mm.apis.inferencers.base import build_backend


class Encoder:
    """Features of tokenised texts and preprocessed images, one call per batch.

    ``compute`` runs on the batcher's single worker thread and tokenises a text batch there, in one call
    (cheaper than per request, and off the event loop); ``preprocess`` (per image: decoding and resizing
    dominate) runs on the request threads and stays on the host, so that a batch reaches the model's device
    in one copy that the worker makes, not in one copy per request thread queued behind the model's work.

    Args:
        model: a built ``ChineseCLIP`` (eval mode).
        backend: ``'pytorch'`` or ``'onnxruntime'`` (see :func:`cnclip_mm.apis.inferencers.base.build_backend`).
        onnx_dir: onnxruntime: the exported towers (exported there first when absent).
    """

    def __init__(self, model: nn.Module, backend: str = 'pytorch', onnx_dir: Optional[str] = None) -> None:
        self.model = model.eval()
        self.backend = build_backend(self.model, backend, onnx_dir)
        self.pad_id = int(self.model.text_encoder.pad_token_id)

    @property
    def embed_dim(self) -> int:
        return int(self.model.embed_dim)

    def preprocess(self, image) -> torch.Tensor:
        """One image resized for the model: uint8 ``[3, S, S]`` on the CPU (``compute`` normalises a batch
        on the device: together, the inferencers' preprocessing)."""
        return resize_images(self.model, [image])[0]

    @torch.no_grad()
    def compute(self, kind: str, items: list) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """L2-normalised features: of texts (``'text'``: ``([N, D] features, [N] token counts)``) or of
        images from :meth:`preprocess` (``'image'``: ``[N, D]``)."""
        if kind == 'text':
            ids = self.model.tokenize(list(items))
            return self.backend.text_feats(ids), (ids != self.pad_id).sum(dim=1)
        if kind == 'image':
            return self.backend.image_feats(self.model.data_preprocessor.normalize(torch.stack(items)))
        raise ValueError(f"kind must be 'text' or 'image', got {kind!r}")

    def describe(self, name: str) -> dict:
        return dict(model=os.path.basename(os.fspath(name)), backend=self.backend.name, embed_dim=self.embed_dim,
                    image_size=int(self.model.image_encoder.img_size))
