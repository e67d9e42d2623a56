"""Which model and preprocessing made an index's vectors, and the refusal of any other model.

Vectors of two models (or two preprocessings) live in unrelated spaces: searching one with the other's
queries returns confident nonsense, so an index records its maker and every writer / searcher checks it.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Optional

from torch import nn


class ModelMismatchError(ValueError):
    """An index was opened with a model (or preprocessing) other than the one that built it."""


def file_sha256(path: str) -> str:
    """SHA-256 of a checkpoint file (a folder: of its files' names and bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = [path] if osp.isfile(path) else sorted(
        osp.join(root, name) for root, _, names in os.walk(path) for name in names)
    for name in files:
        if len(files) > 1:
            digest.update(osp.relpath(name, path).encode())
        with open(name, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
    return digest.hexdigest()


def model_identity(model: nn.Module, source: Optional[str] = None) -> dict:
    """What an index stores about its model: name / checkpoint (with hash), a fingerprint of the weights,
    the embedding size, the image tower, the model config (as data) and the image preprocessing.

    Args:
        model: the built ``ChineseCLIP``.
        source: the model name or checkpoint path it was loaded from (recorded for people; the
            weights fingerprint is what is compared).
    """
    from cnclip_mm.apis.inferencers.gallery import model_key
    prep = model.data_preprocessor
    identity = dict(
        source=source,
        checkpoint_sha256=file_sha256(source) if source and osp.exists(source) else None,
        weights=model_key(model, 'weights'),
        embed_dim=int(model.embed_dim),
        image_encoder=dict(type=type(model.image_encoder).__name__,
                           img_size=int(getattr(model.image_encoder, 'img_size', 0))),
        config=_plain(getattr(model, 'cfg', None)),
        preprocessing=dict(resize='bicubic, square, no crop',
                           image_size=int(getattr(model.image_encoder, 'img_size', 0)),
                           mean=[round(float(v) / 255, 8) for v in prep.mean.flatten()],
                           std=[round(float(v) / 255, 8) for v in prep.std.flatten()]),
    )
    return identity


COMPARED = ('weights', 'embed_dim', 'preprocessing')


def _plain(cfg):
    """The model config as JSON data (for people reading meta.json; not compared)."""
    return None if cfg is None else json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg,
                                                          default=str))


def check_identity(stored: dict, given: dict, where: str) -> None:
    """Raise :class:`ModelMismatchError` naming each differing field when ``given`` did not make ``where``."""
    diffs = [key for key in COMPARED if stored.get(key) != given.get(key)]
    if diffs:
        lines = [f'  {key}: index has {stored.get(key)!r}, this model has {given.get(key)!r}' for key in diffs]
        raise ModelMismatchError(
            f'{where} was built by another model (source {stored.get("source")!r}, checkpoint sha256 '
            f'{stored.get("checkpoint_sha256")}); this one is {given.get("source")!r}. Its vectors are not '
            f'comparable with this model\'s; rebuild the index with this model or load the original one.\n'
            + '\n'.join(lines))
