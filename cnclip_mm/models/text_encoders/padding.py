"""Trim a batch of token ids to its longest text on the CPU, before the text tower sees it.

The tower computes on every column it gets and reads no lengths back from the device (that would stop
``torch.compile`` and sync the GPU). Cutting the all-padding tail here saves that work; rounding the kept
length up to a multiple keeps the number of shapes a compiler sees small. Masked keys do not change the
[CLS] state, so trimmed and untrimmed ids give the same features to float rounding.
"""
import torch


def trim_padding(text_ids: torch.Tensor, pad_token_id: int = 0, pad_to_multiple_of: int = 8) -> torch.Tensor:
    """Drop the trailing columns that are padding in every row, keeping a multiple of ``pad_to_multiple_of``.

    Args:
        text_ids: ``[N, L]`` CPU token ids, padded at the end.
        pad_token_id: the padding id.
        pad_to_multiple_of: round the kept length up to a multiple of this, capped at ``L``; 1 keeps the
            longest text's length exactly.

    Returns:
        ``text_ids[:, :kept]`` (a view).
    """
    if text_ids.device.type != 'cpu':
        raise ValueError(f'trim_padding reads the lengths on the host: give CPU ids, got {text_ids.device} '
                         '(trim before moving the batch to the device)')
    if pad_to_multiple_of < 1:
        raise ValueError(f'pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}')
    length = text_ids.shape[1]
    used = (text_ids != pad_token_id).any(0).nonzero()
    longest = int(used.max()) + 1 if len(used) else 1
    kept = min(length, -(-longest // pad_to_multiple_of) * pad_to_multiple_of)
    return text_ids[:, :kept]
