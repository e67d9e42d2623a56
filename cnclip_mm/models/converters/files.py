"""Reading checkpoint files of every supported kind into a plain ``{key: tensor}`` dict, safely.

Every pickle goes through ``torch.load(weights_only=True)``. The project's own (mmengine) checkpoints also hold
numpy values and ``HistoryBuffer`` objects in ``meta`` / ``message_hub``; those few types are allow-listed, and the
``getattr`` that a pickled ``HistoryBuffer`` needs is replaced by one that only reaches its public methods.
"""
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

StateDict = Dict[str, torch.Tensor]

HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
HF_INDEX_FILES = ('model.safetensors.index.json', 'pytorch_model.bin.index.json')
VOCAB_FILES = ('vocab.txt', 'tokenizer.json')


def _history_buffer_getattr(obj: Any, name: Any) -> Any:
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_'):
        return getattr(obj, name)
    raise RuntimeError(f'refusing getattr({obj!r}, {name!r}) while unpickling a checkpoint')


def checkpoint_types() -> List[Any]:
    """The one allow-list: globals this project's (mmengine) checkpoints need beyond tensors.

    ``HistoryBuffer`` (message hub) and the numpy scalar / array rebuild types. Every loading path uses
    :func:`safe_torch_load`, which adds a ``getattr`` that only reaches ``HistoryBuffer``'s public methods.
    """
    from mmengine.logging import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtypes = [type(np.dtype(t)) for t in
              ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool')]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, HistoryBuffer, *dtypes]


def _safe_globals() -> List[Any]:
    return [*checkpoint_types(), (_history_buffer_getattr, 'builtins.getattr')]


def safe_torch_load(path: str, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with mmengine's checkpoint meta types allowed.

    ``mmap=True`` maps the tensors instead of reading them (zip-format files only): cheap key peeks.
    """
    if is_torchscript(path):
        raise ValueError(f'{path} is a TorchScript archive (e.g. an OpenAI CLIP release), not a state dict; '
                         'use it through the OpenAICLIPVisual initializer or save its state_dict() first')
    # Only what is not allow-listed already: leaving the context removes its entries from the global list,
    # which must not undo registrations made elsewhere (e.g. for mmengine's resume).
    registered = torch.serialization.get_safe_globals()
    with torch.serialization.safe_globals([g for g in _safe_globals() if g not in registered]):
        try:
            return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
        except Exception as err:  # torch raises UnpicklingError / RuntimeError with its own hints
            raise RuntimeError(f'cannot load {path} with torch.load(weights_only=True): {err}') from err


def is_torchscript(path: str) -> bool:
    """Whether ``path`` is a TorchScript zip (it holds compiled ``code/``), as OpenAI's CLIP files are."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any('/code/' in name or name.endswith('/constants.pkl') for name in archive.namelist())


def load_safetensors(path: str) -> StateDict:
    from safetensors.torch import load_file
    return load_file(path, device='cpu')


def read_weights(path: str) -> Tuple[StateDict, dict]:
    """Read ``path`` (a file or a Hugging Face folder) into a flat state dict and extra information.

    Returns:
        ``(state_dict, extra)``; ``extra`` may hold ``hf_config`` (config.json), ``vocab_file`` (a folder with a
        vocabulary), ``meta`` (mmengine meta), ``checkpoint`` (the other top-level entries of an official file:
        epoch, step, name) and ``raw`` (the whole loaded dict).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _read_hf_folder(Path(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        return _check_tensors(load_safetensors(path), path), {}
    return unwrap(safe_torch_load(path), path)


def unwrap(obj: Any, path: str) -> Tuple[StateDict, dict]:
    """Take the state dict out of a loaded checkpoint object (``state_dict`` / ``model`` entry or the dict itself)."""
    if not isinstance(obj, dict):
        raise TypeError(f'{path}: expected a dict checkpoint, got {type(obj).__name__}')
    extra = {}
    for entry in ('state_dict', 'model'):
        if isinstance(obj.get(entry), dict):
            if isinstance(obj.get('meta'), dict):
                extra['meta'] = obj['meta']
            extra['checkpoint'] = {k: v for k, v in obj.items()
                                   if k in ('epoch', 'step', 'name', 'iter')}
            extra['raw'] = obj  # the whole checkpoint (optimizer, loop state) for resume
            return _check_tensors(obj[entry], path), extra
    return _check_tensors(obj, path), extra


def _check_tensors(state_dict: dict, path: str) -> StateDict:
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f'{path}: not a state dict, these entries are not tensors: {bad[:10]}')
    if not state_dict:
        raise ValueError(f'{path}: the state dict is empty')
    return dict(state_dict)


def _read_hf_folder(folder: Path) -> Tuple[StateDict, dict]:
    extra = {}
    config = folder / 'config.json'
    if config.is_file():
        extra['hf_config'] = json.loads(config.read_text(encoding='utf-8'))
    if any((folder / name).is_file() for name in VOCAB_FILES):
        extra['vocab_file'] = str(folder)
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return _read_single(folder / name), extra
    for name in HF_INDEX_FILES:
        if (folder / name).is_file():
            weight_map = json.loads((folder / name).read_text(encoding='utf-8'))['weight_map']
            state_dict = {}
            for shard in sorted(set(weight_map.values())):
                state_dict.update(_read_single(folder / shard))
            return state_dict, extra
    raise FileNotFoundError(f'{folder}: no weights found (looked for {", ".join(HF_WEIGHT_FILES + HF_INDEX_FILES)})')


def _read_single(path: Path) -> StateDict:
    if path.suffix == '.safetensors':
        return _check_tensors(load_safetensors(str(path)), str(path))
    return unwrap(safe_torch_load(str(path)), str(path))[0]
