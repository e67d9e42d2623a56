"""Read a transformers BERT folder (config.json + model.safetensors or pytorch_model.bin) as data.

The weights may come from ``BertModel`` (unprefixed keys) or from a pretraining head model such as the
hfl/* releases (``bert.``-prefixed, with ``cls.`` heads and a pooler); the heads, the pooler and the
``position_ids`` / ``token_type_ids`` buffers are not part of the text tower and are dropped.
"""
import json
import os
import re
from pathlib import Path
from typing import Dict, Tuple

import torch

WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
DROPPED = re.compile(r'^(pooler\.|cls\.)|(^|\.)(position_ids|token_type_ids)$')
HUB_ID = re.compile(r'^[\w.-]+/[\w.-]+$')


def resolve_folder(pretrained: str, source: str) -> Path:
    """The local folder behind ``pretrained``: the folder itself, or a hub id (``owner/name``) fetched into the
    Hugging Face cache (only config.json and the weights); ``source`` names the setting in errors."""
    folder = Path(os.path.expanduser(pretrained))
    if folder.is_dir() or not HUB_ID.match(pretrained):
        return folder
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(pretrained, allow_patterns=['config.json', *WEIGHT_FILES]))
    except Exception as err:  # offline, unknown repo: the caller names the config key
        raise OSError(f'{source}: cannot fetch {pretrained!r} from the Hugging Face hub ({err})') from err


def read_bert_folder(folder: Path, source: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """``(config.json as a dict, tower state dict with BertModel's keys)`` of a BERT folder.

    Args:
        folder: the folder.
        source: how the user named it (``text_encoder.pretrained='...'``), for error messages.
    """
    if not folder.is_dir():
        raise OSError(f'{source}: {str(folder)!r} is not a local folder')
    config_file = folder / 'config.json'
    if not config_file.is_file():
        raise OSError(f'{source}: {config_file} is missing')
    config = json.loads(config_file.read_text(encoding='utf-8'))
    if not isinstance(config, dict):
        raise ValueError(f'{source}: {config_file} holds {type(config).__name__}, not a JSON object')
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise OSError(f'{source}: {folder} has neither {" nor ".join(WEIGHT_FILES)}')
    if weights.suffix == '.safetensors':
        from safetensors.torch import load_file
        state = load_file(str(weights))
    else:
        state = torch.load(weights, map_location='cpu', weights_only=True)
    return config, tower_state_dict(state)


def tower_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Keys as ``BertModel`` names them: ``bert.`` prefix stripped, heads / pooler / buffers dropped, TF-era
    LayerNorm ``gamma`` / ``beta`` renamed to ``weight`` / ``bias``."""
    out = {}
    for key, value in state.items():
        key = key[len('bert.'):] if key.startswith('bert.') else key
        if DROPPED.search(key):
            continue
        key = re.sub(r'LayerNorm\.gamma$', 'LayerNorm.weight', re.sub(r'LayerNorm\.beta$', 'LayerNorm.bias', key))
        out[key] = value
    return out
