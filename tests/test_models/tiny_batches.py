"""Batches for the tiny model of tests/conftest.py, made as the runner makes them (samples -> clip_collate)."""
from typing import Sequence

import torch

from cnclip_mm.datasets.collate import clip_collate
from cnclip_mm.structures import DataSample

CONTEXT = 52  # the tiny config's tokenizer context length
CLS, SEP = 101, 102


def caption_ids(length: int, generator: torch.Generator) -> torch.Tensor:
    """``[CONTEXT]`` ids: [CLS], ``length - 2`` random tokens, [SEP], zero padding."""
    ids = torch.zeros(CONTEXT, dtype=torch.long)
    ids[0], ids[length - 1] = CLS, SEP
    ids[1:length - 1] = torch.randint(106, 21128, (length - 2,), generator=generator)
    return ids


def pair_batch(lengths: Sequence[int], img_size: int = 32, seed: int = 0) -> dict:
    """A collated batch of (uint8 image, caption) pairs, caption ``i`` being ``lengths[i]`` tokens long.

    ``clip_collate`` trims the ids to the longest caption rounded up to a multiple of 8; the result goes to
    ``model.data_preprocessor``, which moves it to the model's device.
    """
    g = torch.Generator().manual_seed(seed)
    samples = []
    for length in lengths:
        image = torch.randint(0, 256, (3, img_size, img_size), generator=g, dtype=torch.uint8)
        samples.append(dict(inputs=image, data_samples=DataSample(text_ids=caption_ids(length, g))))
    return clip_collate(samples, pad_to_multiple_of=8)


def train_step(model, data: dict, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Preprocess, loss of both towers, backward, optimizer step; the detached loss."""
    batch = model.data_preprocessor(data, training=True)
    loss = model(**batch, mode='loss')['loss']
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()
