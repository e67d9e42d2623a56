"""Chinese RoBERTa-wwm text tower: the project's own BERT (``modules.py``), [CLS] state as the feature."""
from typing import Optional, Union

import torch
from mmengine.model import BaseModule

from cnclip_mm.registry import MODELS

from ..backbones.utils import resolve_arch, set_requires_grad
from .modules import BertConfig, BertModel
from .pretrained import read_bert_folder, resolve_folder


@MODELS.register_module()
class ChineseBertEncoder(BaseModule):
    """BERT text tower of Chinese CLIP.

    ``self.bert`` has transformers' ``BertModel`` module names (no pooler), so state-dict keys and
    checkpoints are the same as with transformers; it is plain PyTorch that hooks, PEFT, quantization and
    ``torch.compile(fullgraph=True)`` see through. The ids are used as given: trim the padding on the CPU
    first (:func:`cnclip_mm.models.text_encoders.trim_padding`, done by ``clip_collate``).

    Args:
        arch: ``'base'`` (RoBERTa-wwm-ext-base), ``'large'``, ``'rbt3'`` or a dict of ``BertConfig`` fields
            (``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ...).
        vocab_size: rows of the word embedding (21128 for the Chinese BERT vocab).
        pretrained: a local transformers BERT folder (config.json + model.safetensors or pytorch_model.bin)
            or a hub id fetched into the Hugging Face cache; its config then wins over ``arch``.
        pad_token_id: id whose positions are masked out of attention (and the embedding's padding row), also
            over a pretrained folder's config.json.
        grad_checkpointing: recompute each layer in backward to save memory.
    """

    arch_zoo = {
        'base': dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
        'large': dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
        'rbt3': dict(hidden_size=768, num_hidden_layers=3, num_attention_heads=12, intermediate_size=3072),
    }

    def __init__(self, arch: Union[str, dict] = 'base', vocab_size: int = 21128,
                 pretrained: Optional[str] = None, pad_token_id: int = 0,
                 grad_checkpointing: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.pad_token_id = pad_token_id
        state = None
        if pretrained:
            source = f'text_encoder.pretrained={pretrained!r}'
            try:
                fields, state = read_bert_folder(resolve_folder(pretrained, source), source)
            except OSError as err:  # a typo'd folder, or offline: name the config key to change
                raise OSError(f'{err}. Point it at a local folder with config.json and the weights (e.g. a '
                              'downloaded hfl/chinese-roberta-wwm-ext), or set it to None to start from random '
                              'weights.') from err
            config = BertConfig.from_fields(dict(fields, pad_token_id=pad_token_id), f'{source} config.json',
                                            strict=False)
        else:
            arch = resolve_arch(self.arch_zoo, arch, ('hidden_size', 'num_hidden_layers', 'num_attention_heads'))
            config = BertConfig.from_fields(dict(arch, vocab_size=vocab_size, pad_token_id=pad_token_id),
                                            f'text_encoder.arch={arch}')
        self.bert = BertModel(config)
        if state is not None:
            self._load_pretrained(state, source)
        self.set_grad_checkpointing(grad_checkpointing)

    def _load_pretrained(self, state: dict, source: str) -> None:
        missing, unexpected = self.bert.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise KeyError(f'{source}: the weights do not fit its config.json: missing {sorted(missing)}, '
                           f'unexpected {sorted(unexpected)}')

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    @property
    def config(self) -> BertConfig:
        return self.bert.config

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.bert.encoder.gradient_checkpointing = enable

    def forward(self, text_ids: torch.Tensor) -> torch.Tensor:
        """The last layer's state at [CLS] (position 0), ``[N, hidden]``, of ids ``[N, L]``."""
        return self.bert(text_ids, cls_only=True)[:, 0]

    def lock(self, unlocked_layers: int = 0, freeze_layer_norm: bool = True) -> None:
        """Freeze embeddings and all but the last ``unlocked_layers`` encoder layers.

        With ``freeze_layer_norm=False`` the LayerNorms of frozen parts keep training.
        """
        layers = self.bert.encoder.layer
        if not 0 <= unlocked_layers <= len(layers):
            raise ValueError(f'unlocked_layers must be in [0, {len(layers)}], got {unlocked_layers}')
        set_requires_grad(self.parameters(), True)
        frozen = [self.bert.embeddings, *layers[:len(layers) - unlocked_layers]]
        for module in frozen:
            for name, param in module.named_parameters():
                if freeze_layer_norm or 'LayerNorm' not in name:
                    param.requires_grad_(False)

    def unlock(self) -> None:
        set_requires_grad(self.parameters(), True)

    @property
    def locked(self) -> bool:
        return any(not p.requires_grad for p in self.parameters())
