"""Build a ``ChineseCLIP`` from a config and/or a checkpoint of any supported format."""
import copy
import logging
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope

from cnclip_mm.models.architecture import explain_state_dict_mismatch
from cnclip_mm.models.converters import infer_model_cfg, load_state_dict_any, load_state_dict_into
from cnclip_mm.models.converters.loading import CheckpointMismatchError
from cnclip_mm.models.converters.stored_config import stored_model_cfg
from cnclip_mm.registry import MODELS
from cnclip_mm.utils import share_tokenizer

CONTEXT_LENGTH = 52


def init_model(config: Union[str, Config, dict, None] = None, checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu', vocab_file: Optional[str] = None,
               strict: bool = True, context_length: Optional[int] = None):
    """Build a Chinese CLIP model, ready for inference (eval mode).

    Args:
        config: a config file, a ``Config`` or a dict: either a full config with a ``model`` entry or the model
            config itself. ``None`` infers the architecture from ``checkpoint`` (HF: config.json; official /
            mmpretrain: tensor shapes; own: the model config stored in its meta as data, see
            ``stored_config``).
        checkpoint: official ``.pt``, Hugging Face folder / ``.safetensors`` / ``.bin``, mmpretrain ``.pth`` or
            one of this project's checkpoints; ``None`` keeps the initial weights (``init_cfg`` applied).
        device: where to put the model.
        vocab_file: vocabulary of ``model.tokenizer`` (file, folder or hub name); a Hugging Face folder
            brings its own, which this overrides.
        strict: whether checkpoint mismatches raise (they are logged otherwise).
        context_length: token ids per text, overriding the config's (a checkpoint alone: 52, the official
            length); released weights take up to their text tower's 512 positions, so no resizing is needed.

    Returns:
        The ``ChineseCLIP`` model in eval mode; ``model.cfg`` holds the model config used.
    """
    if config is None and checkpoint is None:
        raise ValueError('init_model needs a config, a checkpoint or both')
    state_dict, fmt, extra = (None, None, {}) if checkpoint is None else load_state_dict_any(checkpoint)
    if config is not None:
        model_cfg = _model_cfg(config)
    else:
        stored = stored_model_cfg(extra.get('meta'), source=str(checkpoint))  # read as data, never run
        model_cfg = copy.deepcopy(stored) if stored else infer_model_cfg(state_dict, fmt, extra)
    if state_dict is not None:
        _drop_pretrained_sources(model_cfg, state_dict, fmt, extra)
    vocab = vocab_file or extra.get('vocab_file')
    if vocab:
        old = model_cfg.get('tokenizer') or {}
        model_cfg['tokenizer'] = dict(type='ChineseTokenizer', vocab_file=str(vocab),
                                      context_length=old.get('context_length', CONTEXT_LENGTH))
    if context_length is not None:
        model_cfg['tokenizer'] = dict(model_cfg.get('tokenizer') or dict(type='ChineseTokenizer'),
                                      context_length=int(context_length))

    init_default_scope('cnclip_mm')
    model = MODELS.build(model_cfg)
    if state_dict is None:
        init_weights_quietly(model)
    else:
        try:
            load_state_dict_into(model, state_dict, strict=strict, source=f'{checkpoint} ({fmt} format)')
        except CheckpointMismatchError as err:  # another variant: say which, not hundreds of keys
            mismatch = explain_state_dict_mismatch(model_cfg, state_dict, fmt, extra, str(checkpoint))
            if mismatch:
                raise CheckpointMismatchError(f'{mismatch}\n(loader: {str(err)[:300]})') from None
            raise
        dataset_meta = (extra.get('meta') or {}).get('dataset_meta')
        if dataset_meta:
            model.dataset_meta = dataset_meta
    model.cfg = model_cfg
    return model.to(device).eval()


def init_weights_quietly(model: torch.nn.Module) -> None:
    """``model.init_weights()`` without a console record per parameter.

    mmengine's ``BaseModule.init_weights`` reports how every parameter was initialised ("The value is the
    same before and after calling `init_weights`", hundreds of lines): into the current logger's log file
    when it has one (a Runner's), else through ``logger.info`` to the console. Here the console has no use
    for it, so the current logger is held at WARNING during the call unless it writes a file.
    """
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    # A finished Runner in this process closes its log file but leaves the handler on its logger, which
    # mmengine would write the report into (a closed file handler's stream is None): set those aside.
    closed = [h for h in logger.handlers if isinstance(h, logging.FileHandler) and h.stream is None]
    for handler in closed:
        logger.removeHandler(handler)
    level = logger.level
    if not any(isinstance(handler, logging.FileHandler) for handler in logger.handlers):
        logger.setLevel(max(level, logging.WARNING))
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
        for handler in closed:
            logger.addHandler(handler)


def _drop_pretrained_sources(model_cfg: dict, state_dict: dict, fmt: str, extra: dict) -> None:
    """The checkpoint overwrites every weight, so never fetch a stage-1 source first.

    A stage-1 config names its BERT by ``text_encoder.pretrained`` (often a hub name): building it would
    need the hub (failing offline) only to throw the weights away. The tower is built from the
    checkpoint's shapes instead; the image tower's ``init_cfg`` is never run here (no ``init_weights``).
    """
    text_cfg = model_cfg.get('text_encoder') or {}
    if text_cfg.get('pretrained'):
        inferred = infer_model_cfg(state_dict, fmt, extra)['text_encoder']
        # A preset recognised from the shapes is exact; otherwise a custom arch dict in the config
        # keeps its head count, which shapes cannot tell.
        arch = text_cfg['arch'] if (isinstance(text_cfg.get('arch'), dict)
                                    and not isinstance(inferred['arch'], str)) else inferred['arch']
        model_cfg['text_encoder'] = dict(text_cfg, pretrained=None, arch=arch,
                                         vocab_size=inferred['vocab_size'])


def _model_cfg(config: Union[str, Config, dict]) -> dict:
    if isinstance(config, str):
        config = Config.fromfile(config)
    if isinstance(config, Config):
        config = config.to_dict()
    if not isinstance(config, dict):
        raise TypeError(f'config must be a path, Config or dict, got {type(config).__name__}')
    config = share_tokenizer(_plain(config))
    model_cfg = config['model'] if 'model' in config else config
    if 'type' not in model_cfg:
        raise KeyError(f'the model config has no "type": {sorted(model_cfg)}')
    return copy.deepcopy(model_cfg)


def _plain(cfg):
    if isinstance(cfg, (ConfigDict, dict)):
        return {k: _plain(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_plain(v) for v in cfg)
    return cfg
