"""One tokenizer per config: the top-level ``tokenizer`` entry feeds the model and every ``TokenizeText``.

A config states its tokenizer once, as ``tokenizer = dict(type='ChineseTokenizer', ...)`` at the top level
(``configs/_base_/models/vit-b-16.py`` does, every model base inherits it). The model's ``tokenizer`` and each
``TokenizeText`` step that does not name its own are filled from it before anything is built, so one
``--cfg-options tokenizer.vocab_file=...`` changes the model and every pipeline together.
"""
import copy
import os.path as osp
from typing import Any, MutableMapping


def share_tokenizer(cfg: MutableMapping) -> MutableMapping:
    """Fill the model's and each pipeline's missing tokenizer from ``cfg['tokenizer']`` (in place).

    An explicit tokenizer (with ``type``) in the model or in a ``TokenizeText`` step wins; a partial one
    (e.g. only ``context_length``) is laid over the shared one. A ``vocab_file`` that exists (or names a ``.txt``
    file, e.g. one the demo generates later) is made absolute and normalised, so the config stored in
    checkpoints works from any directory; hub names stay as they are.

    Args:
        cfg: an mmengine ``Config`` or a plain dict; left unchanged when it has no top-level ``tokenizer``.

    Returns:
        ``cfg`` itself.
    """
    shared = cfg.get('tokenizer')
    if not isinstance(shared, MutableMapping):
        return cfg
    shared.setdefault('type', 'ChineseTokenizer')
    vocab = shared.get('vocab_file')
    if isinstance(vocab, str) and (osp.exists(vocab) or vocab.endswith('.txt')):
        shared['vocab_file'] = osp.abspath(vocab)  # also normalised: '{{ fileDirname }}/../..' paths
    model = cfg.get('model')
    if isinstance(model, MutableMapping):
        model['tokenizer'] = _merged(shared, model.get('tokenizer'))
    for key, value in cfg.items():
        if key not in ('tokenizer', 'model'):
            _fill_steps(value, shared)
    return cfg


def _merged(shared: MutableMapping, own: Any) -> Any:
    """``own`` over ``shared``: a full tokenizer config (with ``type``) or an object stays as it is."""
    if own is None:
        return copy.deepcopy(shared)
    if isinstance(own, MutableMapping) and 'type' not in own:
        return {**copy.deepcopy(dict(shared)), **own}
    return own


def _fill_steps(node: Any, shared: MutableMapping) -> None:
    if isinstance(node, MutableMapping):
        if node.get('type') == 'TokenizeText' and (node.get('tokenizer') is None
                                                   or isinstance(node['tokenizer'], MutableMapping)):
            node['tokenizer'] = _merged(shared, node.get('tokenizer'))
        for value in node.values():
            _fill_steps(value, shared)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _fill_steps(value, shared)
