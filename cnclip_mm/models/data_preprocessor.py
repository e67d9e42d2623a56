"""Turns a collated batch into model inputs: normalised images and stacked token ids, with their slots."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from cnclip_mm.registry import MODELS

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@MODELS.register_module()
class CLIPDataPreprocessor(BaseDataPreprocessor):
    """Normalise uint8 RGB images with the CLIP mean/std and batch the text ids.

    A batch may mix image-only, text-only and paired samples (retrieval evaluation lists images and texts
    as separate items), so the output says which samples each tensor row belongs to.

    Args:
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel std on the [0, 1] scale.

    Returns (from ``forward``): ``{'inputs': {'images', 'image_slots', 'text_ids', 'text_slots'},
    'data_samples': list}``; ``images`` / ``text_ids`` are None when no sample carries them.
    """

    def __init__(self, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0-255 float) ``[N, 3, H, W]`` -> normalised float, contiguous.

        One conversion copy into a fresh contiguous tensor, then in place: a permuted (HWC-stacked)
        batch would otherwise run every step on strided memory, slower than per-image normalising.
        """
        out = torch.empty(images.shape, dtype=torch.float32, device=self.mean.device)
        out.copy_(images)
        return out.sub_(self.mean).div_(self.std)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        samples = data.get('data_samples')
        raw = data.get('inputs')
        count = len(raw) if raw is not None else len(samples or [])
        if isinstance(raw, torch.Tensor):  # stacked by the collate: every sample has an image
            image_slots = list(range(count))
            images = self.normalize(raw) if count else None
        else:
            image_slots = [i for i in range(count) if raw is not None and raw[i] is not None]
            images = self.normalize(torch.stack([raw[i] for i in image_slots])) if image_slots else None

        if 'text_slots' in data:  # clip_collate stacked the token ids already
            text_ids, text_slots = data['text_ids'], list(data['text_slots'])
        else:
            text_slots, text_rows = [], []
            for i, sample in enumerate(samples or []):
                if sample is not None and 'text_ids' in sample:
                    text_slots.append(i)
                    text_rows.append(sample.text_ids)
            text_ids = torch.stack(text_rows).to(self.device) if text_rows else None
        inputs = dict(images=images, image_slots=image_slots, text_ids=text_ids, text_slots=text_slots)
        return dict(inputs=inputs, data_samples=samples)


def batch_inputs(images: Optional[torch.Tensor] = None, text_ids: Optional[torch.Tensor] = None) -> dict:
    """Build model inputs by hand (already normalised images and/or token ids), one sample per row."""
    return dict(
        images=images, image_slots=list(range(len(images))) if images is not None else [],
        text_ids=text_ids, text_slots=list(range(len(text_ids))) if text_ids is not None else [])
