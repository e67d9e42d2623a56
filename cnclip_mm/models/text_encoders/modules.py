"""BERT as plain PyTorch modules, named as transformers' ``BertModel`` so that its checkpoints load as they are.

Post-LN BERT: absolute positions ``0..L-1``, token type 0, GELU, dropout on the embeddings, the attention
probabilities and each sublayer's output. Attention is ``F.scaled_dot_product_attention`` with a boolean key
mask built on the device from the ids, so nothing is read back to the host: the model computes on the ids it
gets, and trimming the padding is the caller's job on the CPU (:func:`.padding.trim_padding`). With
``cls_only`` the last layer computes the [CLS] row alone (its keys and values still come from every token),
which is all Chinese CLIP reads.
"""
from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpointing import checkpointed

ACTIVATIONS = {'gelu': lambda: nn.GELU(), 'gelu_new': lambda: nn.GELU(approximate='tanh'),
               'gelu_pytorch_tanh': lambda: nn.GELU(approximate='tanh'), 'relu': lambda: nn.ReLU()}
# config.json fields that change the math in ways this tower does not implement: value it must have.
UNSUPPORTED = dict(position_embedding_type='absolute', is_decoder=False, add_cross_attention=False)


@dataclass
class BertConfig:
    """The fields of transformers' ``BertConfig`` that this tower reads (same names and defaults)."""

    vocab_size: int = 21128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = 'gelu'
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_fields(cls, values: dict, source: str, strict: bool = True) -> 'BertConfig':
        """A config from a dict (an ``arch`` dict, or a config.json read as data).

        Args:
            values: field values; ``strict`` rejects names that are not fields, else they are ignored.
            source: what ``values`` came from, for error messages.
            strict: whether unknown names are an error.
        """
        names = {f.name for f in fields(cls)}
        for key, wanted in UNSUPPORTED.items():
            if values.get(key, wanted) != wanted:
                raise ValueError(f'{source}: {key}={values[key]!r} is unsupported (this BERT needs {wanted!r})')
        unknown = sorted(set(values) - names - set(UNSUPPORTED))
        if strict and unknown:
            raise KeyError(f'{source}: unknown BERT fields {unknown}; known: {sorted(names)}')
        config = cls(**{k: v for k, v in values.items() if k in names})
        if config.hidden_act not in ACTIVATIONS:
            raise ValueError(f'{source}: hidden_act={config.hidden_act!r} is unsupported; one of {sorted(ACTIVATIONS)}')
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f'{source}: hidden_size={config.hidden_size} is not a multiple of '
                             f'num_attention_heads={config.num_attention_heads}')
        return config

    def to_dict(self) -> dict:
        return asdict(self)


class BertEmbeddings(nn.Module):
    """Word + token type (0) + absolute position embeddings, LayerNorm, dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # BertModel's order of the sums: (words + token types) + positions.
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(torch.zeros_like(positions))
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head attention through SDPA; padded keys masked, dropout on the probabilities in training."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        # Not called: its ``p`` is SDPA's dropout on the probabilities (as in transformers), so code that
        # sets every ``nn.Dropout``'s rate reaches this one too.
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, L, C]`` -> ``[N, heads, L, head_size]``."""
        return x.view(x.shape[0], x.shape[1], self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """``[N, L, C]`` states and a ``[N, 1, 1, L]`` bool key mask -> ``[N, L, C]`` (``[N, 1, C]`` with
        ``cls_only``: the query of row 0 alone)."""
        queries = hidden[:, :1] if cls_only else hidden
        q, k, v = self._heads(self.query(queries)), self._heads(self.key(hidden)), self._heads(self.value(hidden))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask,
                                             dropout_p=self.dropout.p if self.training else 0.0)
        return out.transpose(1, 2).flatten(2)


class BertSelfOutput(nn.Module):
    """Attention output projection, dropout, LayerNorm of the residual sum (post-LN)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        context = self.self(hidden, key_mask, cls_only)
        return self.output(context, hidden[:, :1] if cls_only else hidden)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACTIVATIONS[config.hidden_act]()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden))


class BertOutput(nn.Module):
    """Feed-forward output projection, dropout, LayerNorm of the residual sum (post-LN)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        attended = self.attention(hidden, key_mask, cls_only)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    """The layer stack; ``gradient_checkpointing`` recomputes each layer in backward (training only)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        last = len(self.layer) - 1
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i, layer in enumerate(self.layer):
            only = cls_only and i == last
            if recompute:
                hidden = checkpointed(layer, hidden, key_mask, only)
            else:
                hidden = layer(hidden, key_mask, only)
        return hidden


class BertModel(nn.Module):
    """transformers' ``BertModel`` without the pooler: the same submodules and state-dict keys.

    Args:
        config: the architecture; ``pad_token_id`` is the id masked out of attention.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """BERT's initialisation (transformers' ``_init_weights``): normal(0, initializer_range) weights,
        zero biases and padding row, unit LayerNorms. Not named ``init_weights``: mmengine calls that after
        pretrained weights are loaded."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, cls_only: bool = False,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Last hidden states ``[N, L, C]`` of ids ``[N, L]`` (``[N, 1, C]``, the [CLS] row, with ``cls_only``).

        ``key_mask`` (``[N, L]`` bool, True at real tokens) defaults to ``input_ids != pad_token_id``.
        """
        if key_mask is None:
            key_mask = input_ids != self.config.pad_token_id
        hidden = self.embeddings(input_ids)
        return self.encoder(hidden, key_mask[:, None, None, :], cls_only)
