"""Chinese RoBERTa-wwm text tower on transformers' ``BertModel`` (no pooler; the [CLS] state is the feature)."""
from typing import Optional, Union

import torch
from mmengine.model import BaseModule

from cnclip_mm.registry import MODELS

from ..backbones.utils import resolve_arch, set_requires_grad
from ..dropout import use_fast_dropout
from ..gemm import route_linears
from .packed_bert import can_pack, packed_cls_state


@MODELS.register_module()
class ChineseBertEncoder(BaseModule):
    """BERT text tower of Chinese CLIP.

    Args:
        arch: ``'base'`` (RoBERTa-wwm-ext-base), ``'large'``, ``'rbt3'`` or a dict of ``BertConfig`` fields
            (``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ...).
        vocab_size: rows of the word embedding (21128 for the Chinese BERT vocab).
        pretrained: a local folder or hub name for ``BertModel.from_pretrained``; its config then wins
            over ``arch``.
        pad_token_id: id whose positions are masked out of attention.
        grad_checkpointing: recompute each layer in backward to save memory.
        bucket_size: rows per length bucket when encoding large batches without autograd.
        fast_dropout: BERT's dropouts (hidden states and attention probabilities) draw their masks
            with :mod:`cnclip_mm.models.dropout` where torch samples them serially (CPUs other than
            Intel); the same distribution, other masks than torch's. ``False``: torch's dropout.
    """

    arch_zoo = {
        'base': dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
        'large': dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
        'rbt3': dict(hidden_size=768, num_hidden_layers=3, num_attention_heads=12, intermediate_size=3072),
    }

    def __init__(self, arch: Union[str, dict] = 'base', vocab_size: int = 21128,
                 pretrained: Optional[str] = None, pad_token_id: int = 0,
                 grad_checkpointing: bool = False, bucket_size: int = 32, fast_dropout: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        from transformers import BertConfig, BertModel

        self.pad_token_id = pad_token_id
        self.bucket_size = bucket_size
        if pretrained:
            try:
                self.bert = BertModel.from_pretrained(pretrained, add_pooling_layer=False)
            except OSError as err:  # offline, or a typo'd folder: name the config key to change
                raise OSError(
                    f'text_encoder.pretrained={pretrained!r}: cannot load a BERT from it ({err}). '
                    'Point it at a local folder with config.json and the weights (e.g. a downloaded '
                    'hfl/chinese-roberta-wwm-ext), or set it to None to start from random weights.'
                ) from err
        else:
            fields = dict(vocab_size=vocab_size, max_position_embeddings=512, type_vocab_size=2,
                          hidden_act='gelu', hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                          layer_norm_eps=1e-12, pad_token_id=pad_token_id)
            fields.update(resolve_arch(self.arch_zoo, arch, ('hidden_size', 'num_hidden_layers',
                                                             'num_attention_heads')))
            self.bert = BertModel(BertConfig(**fields), add_pooling_layer=False)
        if fast_dropout:
            use_fast_dropout(self.bert)
        route_linears(self.bert)  # products through oneDNN where faster (cnclip_mm.models.gemm)
        self.set_grad_checkpointing(grad_checkpointing)

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    @property
    def config(self):
        return self.bert.config

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        # transformers >= 5.x names it "activation checkpointing"; older releases "gradient checkpointing".
        bert = self.bert
        if hasattr(bert, 'activation_checkpointing_enable'):
            if enable:
                bert.activation_checkpointing_enable(dict(use_reentrant=False))
            elif bert.is_activation_checkpointing:
                bert.activation_checkpointing_disable()
        elif enable:
            bert.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(use_reentrant=False))
        elif bert.is_gradient_checkpointing:
            bert.gradient_checkpointing_disable()

    def forward(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Return the last hidden state at [CLS] (position 0), ``[N, hidden]``.

        Padding costs nothing: columns that are padding in every row are cut off, and without
        autograd a large batch runs as length-sorted buckets of ``bucket_size`` rows, each cut to its
        own longest text. Padded keys are masked out of attention either way, so [CLS] sees the
        same tokens (features agree to float rounding).
        """
        if not torch.is_grad_enabled() and len(text_ids) >= 2 * self.bucket_size:
            lengths = (text_ids != self.pad_token_id).int().cumsum(1).argmax(1)  # last non-pad column
            order = lengths.argsort()
            out = torch.cat([self._cls_state(text_ids[rows])
                             for rows in order.split(self.bucket_size)])
            return out[order.argsort()]
        return self._cls_state(text_ids)

    def _cls_state(self, text_ids: torch.Tensor) -> torch.Tensor:
        mask = text_ids != self.pad_token_id
        used = int(mask.any(0).nonzero().max()) + 1 if mask.any() else text_ids.shape[1]
        text_ids, mask = text_ids[:, :used], mask[:, :used]
        # Real tokens only, [CLS] alone in the last layer (packed_bert.py); the tracer (ONNX,
        # TorchScript) cannot follow its data-dependent shapes, so exports keep BertModel's path.
        if not torch.jit.is_tracing() and can_pack(self.bert, mask):
            return packed_cls_state(self.bert, text_ids, mask)
        hidden = self.bert(input_ids=text_ids, attention_mask=mask.long()).last_hidden_state
        return hidden[:, 0]

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
