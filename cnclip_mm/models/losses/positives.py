"""Keys that make two samples of a batch positives of each other (false-negative-aware loss).

Each sample gets one int64 key per criterion. Keys must agree across processes (they are
all-gathered), so strings are hashed with BLAKE2b, never with Python's per-process ``hash``.
"""
import hashlib
from typing import Sequence

import torch
from torch import Tensor

POSITIVE_KEYS = ('image_id', 'text', 'label')
MISSING = torch.iinfo(torch.int64).min  # a sample without the key matches nothing by it


def _stable_key(value) -> int:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip('-').isdigit():
        return int(value)  # '17' and 17 name the same image
    digest = hashlib.blake2b(str(value).encode('utf-8'), digest_size=8).digest()
    return int.from_bytes(digest, 'little') >> 1  # 63 bits: never MISSING


def _sample_value(sample, key: str):
    if key != 'label':
        return sample.get(key)
    if sample.get('label_index') is not None:  # a host int: no device sync (DataSample.set_gt_label)
        return sample.get('label_index')
    label = sample.get('gt_label')
    if label is None:
        return None
    if isinstance(label, torch.Tensor) and label.device.type != 'cpu':
        raise ValueError(f'a sample\'s gt_label is on {label.device} and has no label_index: set labels with '
                         'DataSample.set_gt_label, which keeps the index on the host for the loss')
    return int(torch.as_tensor(label).reshape(-1)[0])


def positive_keys(data_samples: Sequence, keys: Sequence[str], device=None) -> Tensor:
    """``[N, len(keys)]`` int64 keys of ``data_samples`` (``MISSING`` where a sample lacks one).

    Args:
        data_samples: the batch's ``DataSample`` s (metainfo ``image_id`` / ``text``, field ``gt_label``).
        keys: criteria among :data:`POSITIVE_KEYS`.
        device: device of the returned tensor.
    """
    rows = []
    for sample in data_samples:
        row = []
        for key in keys:
            value = _sample_value(sample, key)
            row.append(MISSING if value is None else _stable_key(value))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64, device=device).reshape(len(rows), len(keys))


def positive_mask(row_keys: Tensor, col_keys: Tensor, diag_cols: Tensor) -> Tensor:
    """Boolean ``[R, C]``: row i and column j share a (present) key, or j is row i's own pair.

    Args:
        row_keys: ``[R, K]`` keys of the rows.
        col_keys: ``[C, K]`` keys of the columns (the global batch).
        diag_cols: ``[R]`` column index of each row's own pair.
    """
    same = (row_keys[:, None, :] == col_keys[None, :, :]) & (row_keys[:, None, :] != MISSING)
    mask = same.any(dim=-1)
    mask[torch.arange(len(diag_cols), device=mask.device), diag_cols] = True
    return mask
