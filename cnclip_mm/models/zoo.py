"""Models by name: the model index (configs/metafile.yml), weight resolution and ``get_model``.

Extra index files in the same schema (``Models:`` entries with ``Name``, ``Config``, ``Weights``, optional
``Alias``, ``Files``, ``SHA256``, ``Vocab``) are added with :func:`register_models` or listed in
``$CNCLIP_MODEL_INDEX`` (``os.pathsep``-separated); their ``Config`` paths are relative to the file.
"""
import fnmatch
import os
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
import yaml

from cnclip_mm.utils.download import cached_path, download, is_url, unreachable

# The folder holding configs/: the package's own copy in an installed wheel (setup.py puts it in
# cnclip_mm/.mim), else the repository root of a checkout or an editable install.
_PACKAGED = Path(__file__).resolve().parents[1] / '.mim'
CONFIG_ROOT = _PACKAGED if (_PACKAGED / 'configs' / 'metafile.yml').is_file() \
    else Path(__file__).resolve().parents[2]
METAFILE = CONFIG_ROOT / 'configs' / 'metafile.yml'
INDEX_ENV = 'CNCLIP_MODEL_INDEX'

_registered: List[Path] = []


def register_models(index_file: Union[str, os.PathLike]) -> List[str]:
    """Add the models of another index file (same schema as configs/metafile.yml); returns their names."""
    path = Path(index_file).resolve()
    names = [entry['Name'] for entry in _read_index(path)]
    if path not in _registered:
        _registered.append(path)
    return names


def _read_index(path: Path) -> List[dict]:
    if not path.is_file():
        raise FileNotFoundError(f'model index {path} does not exist')
    data = yaml.safe_load(path.read_text(encoding='utf-8')) or {}
    collections = {c['Name']: c for c in data.get('Collections') or []}
    base = CONFIG_ROOT if path == METAFILE else path.parent
    entries = []
    for i, entry in enumerate(data.get('Models') or []):
        missing = [k for k in ('Name', 'Config') if k not in entry]
        if missing:
            raise KeyError(f'{path}: Models[{i}] lacks {missing}')
        entry = dict(entry)
        collection = collections.get(entry.get('In Collection'), {})
        entry.setdefault('Vocab', collection.get('Vocab'))
        entry['Config'] = str(base / entry['Config'])
        if entry.get('Vocab') and not is_url(entry['Vocab']):
            entry['Vocab'] = str(base / entry['Vocab'])
        entries.append(entry)
    return entries


def _index() -> Dict[str, dict]:
    """``{lower-case name or alias: entry}`` over the metafile, registered files and ``$CNCLIP_MODEL_INDEX``."""
    files = [METAFILE, *_registered]
    files += [Path(p).resolve() for p in os.environ.get(INDEX_ENV, '').split(os.pathsep) if p]
    index = {}
    for path in files:
        for entry in _read_index(path):
            for name in [entry['Name'], *(entry.get('Alias') or [])]:
                index[name.lower()] = entry
    return index


def list_models(pattern: Optional[str] = None) -> List[str]:
    """Names of the indexed models, optionally filtered by a shell pattern (``'*vit-b*'``), case-insensitive."""
    names = sorted({entry['Name'] for entry in _index().values()})
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())]
    return names


def model_info(name: str) -> dict:
    """The index entry of ``name`` (or an alias such as the official ``'ViT-B-16'``)."""
    index = _index()
    if name.lower() not in index:
        close = [n for n in list_models() if name.lower() in n.lower()]
        raise KeyError(f'no model named {name!r} in the model index; similar: {close or list_models()}')
    return index[name.lower()]


def is_model_name(text) -> bool:
    return isinstance(text, str) and text.lower() in _index()


def download_weights(name: str, progress: bool = True) -> str:
    """Fetch a named model's weights into the cache once; returns the local file (or folder, for HF)."""
    entry = model_info(name)
    url = entry.get('Weights')
    if not url:
        raise ValueError(f'model {entry["Name"]} has no Weights URL in the model index')
    files = entry.get('Files')
    if not files:
        return download(url, sha256=entry.get('SHA256'), progress=progress)
    folder = 'hf/' + entry['Name'].replace('/', '--')
    paths = [download(url.rstrip('/') + '/' + f, subdir=folder, progress=progress) for f in files]
    return osp.dirname(paths[0])


def weights_files(name: str) -> List[tuple]:
    """``(url, cached path)`` of each file of a named model's weights (one, or several for HF folders)."""
    entry = model_info(name)
    url = entry.get('Weights')
    if not url:
        raise ValueError(f'model {entry["Name"]} has no Weights URL in the model index')
    files = entry.get('Files')
    if not files:
        return [(url, cached_path(url))]
    folder = 'hf/' + entry['Name'].replace('/', '--')
    return [(url.rstrip('/') + '/' + f, cached_path(url.rstrip('/') + '/' + f, subdir=folder)) for f in files]


def unfetchable_weights(source: str) -> Optional[str]:
    """Why a model name or URL given as a checkpoint cannot be had here (not cached and its server not
    reachable), naming the URL and where to put the file by hand; None when it is cached or fetchable."""
    source = os.fspath(source)
    if is_url(source):
        files = [(source, cached_path(source))]
    elif is_model_name(source):
        files = weights_files(source)
    else:
        return None
    for url, path in files:
        if path.is_file():
            continue
        problem = unreachable(url)
        if problem:
            return (f'{url} is not in the cache and cannot be fetched ({problem}): download it elsewhere and '
                    f'put it at {path}')
    return None


def resolve_weights(source: str, progress: bool = True) -> str:
    """Turn a checkpoint argument into a local path: a URL is downloaded (cached), a model name fetches
    its index weights; an existing path (or anything else) is returned unchanged for the loader to judge.

    The one place where ``tools/test.py``, ``load_from`` and :func:`get_model` resolve names and URLs.
    """
    source = os.fspath(source)
    if osp.exists(source):
        return source
    if is_url(source):
        return download(source, progress=progress)
    if is_model_name(source):
        return download_weights(source, progress=progress)
    return source


def get_model(name_or_config, pretrained: Union[bool, str] = False, device: Union[str, torch.device] = 'cpu',
              vocab_file: Optional[str] = None, progress: bool = True, context_length: Optional[int] = None):
    """Build a Chinese CLIP by model name (see :func:`list_models`) or config, optionally with weights.

    Args:
        name_or_config: an index name / alias, or a config (path, ``Config`` or dict) as for ``init_model``.
        pretrained: ``False`` keeps the initial weights; ``True`` downloads the named model's released
            weights once (then works offline); a path or URL loads that checkpoint.
        device: where to put the model.
        vocab_file: tokenizer vocabulary override (default: the index's ``Vocab`` when ``pretrained``).
        progress: show download progress.
        context_length: token ids per text (default: the config's); see :func:`init_model`.

    Returns:
        The ``ChineseCLIP`` in eval mode.
    """
    from cnclip_mm.models.builder import init_model
    entry = model_info(name_or_config) if is_model_name(name_or_config) else None
    config = entry['Config'] if entry else name_or_config
    if pretrained is True:
        if entry is None:
            raise ValueError('pretrained=True needs a model name from list_models(); for a config give '
                             'pretrained=<checkpoint path or URL>')
        checkpoint = download_weights(entry['Name'], progress=progress)
    elif pretrained:
        checkpoint = resolve_weights(pretrained, progress=progress)
    else:
        checkpoint = None
    if vocab_file is None and checkpoint is not None and entry is not None and entry.get('Vocab') \
            and not entry.get('Files'):
        vocab = entry['Vocab']  # an extra index's own vocabulary; the released models use the shipped one
        vocab_file = download(vocab, subdir='vocab', progress=progress) if is_url(vocab) else vocab
    return init_model(config, checkpoint, device=device, vocab_file=vocab_file, context_length=context_length)


def load_model(model: str, config=None, device: Union[str, torch.device] = 'cpu', **kwargs):
    """What a tool's ``MODEL`` argument names: a model name (with its released weights, unless ``config``
    is given) or a checkpoint path / URL (built from ``config``, or from the architecture its weights show).

    The one rule of tools/serve.py, tools/demo/app.py, tools/index/build_index.py and the analysis tools.
    ``kwargs`` go to :func:`get_model` / :func:`init_model` (``vocab_file``, ``context_length``).
    """
    from cnclip_mm.models.builder import init_model
    if is_model_name(model) and not config:
        return get_model(model, pretrained=True, device=device, **kwargs)
    return init_model(config, resolve_weights(model), device=device, **kwargs)
