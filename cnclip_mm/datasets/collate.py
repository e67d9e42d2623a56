"""``clip_collate``: one image tensor and one token-id tensor per batch instead of one per sample.

mmengine's default ``pseudo_collate`` leaves every sample's tensors separate. From a dataloader worker
each of them then crosses to the main process on its own (a shared-memory segment and a file
descriptor each): 128 hand-offs for a batch of 64 pairs, slower than loading the batch in the main
process. Stacked, a batch crosses as two tensors plus the samples' metadata.

The token ids are also trimmed here, on the CPU, to the batch's longest text (rounded up to a multiple of
``pad_to_multiple_of``): the text tower computes on every column it gets and never reads lengths back
from the device, so this is where padding stops costing time.
"""
from typing import Sequence

import torch

from cnclip_mm.models.text_encoders.padding import trim_padding
from cnclip_mm.registry import FUNCTIONS


@FUNCTIONS.register_module()
def clip_collate(data_batch: Sequence[dict], pad_to_multiple_of: int = 8, pad_token_id: int = 0) -> dict:
    """Collate ``PackCLIPInputs`` outputs: ``inputs`` and the samples' ``text_ids`` stacked and trimmed.

    Returns ``{'inputs', 'data_samples', 'text_ids', 'text_slots'}``. ``inputs`` is a ``[N, 3, H, W]``
    uint8 tensor when every sample has an image of one size, else the list of images (``None`` for
    text-only samples), as ``pseudo_collate`` gives it. ``text_ids`` stacks the token ids of the
    samples that have them (moved out of those samples; ``text_slots`` says whose rows they are), or
    is ``None``. :class:`~cnclip_mm.models.CLIPDataPreprocessor` reads either form.

    Args:
        data_batch: the samples.
        pad_to_multiple_of: the stacked ids keep the columns up to the longest text, rounded up to a
            multiple of this (capped at the rows' length, the tokenizer's context length); 1 trims exactly.
            Configs pass it as ``dict(type='cnclip_mm.clip_collate', pad_to_multiple_of=...)``.
        pad_token_id: the padding id of the tokenizer.
    """
    for index, item in enumerate(data_batch):
        if not isinstance(item, dict) or not {'inputs', 'data_samples'} <= item.keys():
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise ValueError(f'clip_collate: batch item {index} is {got}, not the '
                             "{'inputs', 'data_samples'} of PackCLIPInputs (end the pipeline with it)")
    images = [item['inputs'] for item in data_batch]
    samples = [item['data_samples'] for item in data_batch]
    if images and all(isinstance(img, torch.Tensor) for img in images) \
            and len({img.shape for img in images}) == 1:
        images = torch.stack(images)
    text_slots = [i for i, sample in enumerate(samples) if sample is not None and 'text_ids' in sample]
    text_ids = None
    if text_slots:
        rows = [samples[i].text_ids for i in text_slots]
        if len({row.shape for row in rows}) != 1:
            raise ValueError(f'clip_collate: token id rows of different lengths {sorted({len(r) for r in rows})} '
                             'in one batch; TokenizeText pads every caption to the context length')
        text_ids = trim_padding(torch.stack(rows), pad_token_id, pad_to_multiple_of)
        for i in text_slots:
            del samples[i].text_ids
    return dict(inputs=images, data_samples=samples, text_ids=text_ids, text_slots=text_slots)
