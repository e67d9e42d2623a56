"""The last-layer [CLS] state of a transformers ``BertModel``, computed on the real tokens only.

``BertModel`` runs every Linear, LayerNorm and activation on the padded ``[N, L, C]`` batch and on
every token of the last layer, though Chinese CLIP reads only the last layer's [CLS] state. Here
the tokens that are not padding are packed into one ``[T, C]`` tensor after the embeddings; only
attention itself goes back to the padded layout (padded keys masked as in ``BertModel``, padded
queries discarded), and the last layer computes the [CLS] queries alone (keys and values still
from every real token). The submodules and parameters are ``BertModel``'s own, called in its
order (post-LN, its dropouts), so the features are the same to float rounding.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..backbones.utils import attend_through_inputs, written_out_attention
from ..dropout import Dropout, dropout, uses_fast_masks


def can_pack(bert: nn.Module, mask: torch.Tensor) -> bool:
    """Whether :func:`packed_cls_state` computes what ``bert`` would for a batch with this ``mask``.

    Decoders, cross-attention, relative position embeddings (older configs) and feed-forward
    chunking are left to ``BertModel``; so are batches with a padded first column (every text
    starts with [CLS]: a row without it would have no query to keep).
    """
    config = bert.config
    return (not config.is_decoder and not config.add_cross_attention
            and getattr(config, 'position_embedding_type', 'absolute') == 'absolute'
            and not getattr(config, 'chunk_size_feed_forward', 0)
            and bool(mask[:, 0].all()))


def packed_cls_state(bert: nn.Module, text_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``bert(input_ids=text_ids, attention_mask=mask).last_hidden_state[:, 0]`` with less work.

    Args:
        bert: a transformers ``BertModel`` (encoder, absolute positions; see :func:`can_pack`).
        text_ids: ``[N, L]`` token ids.
        mask: ``[N, L]`` bool, True at real tokens; ``mask[:, 0]`` must be all True.

    Returns:
        ``[N, hidden]``: the last layer's state at position 0.
    """
    n, length = mask.shape
    hidden = bert.embeddings(input_ids=text_ids)  # padded, as BertModel: positions 0..L-1, token type 0
    if bool(mask.all()):  # nothing to pack: keep the views, skip the mask
        rows, key_mask, hidden = None, None, hidden.flatten(0, 1)
        cls_rows = torch.arange(n, device=mask.device) * length
    else:
        rows = mask.flatten().nonzero().squeeze(1)  # packed order: text by text
        key_mask = mask[:, None, None, :]
        hidden = hidden.flatten(0, 1).index_select(0, rows)
        lengths = mask.sum(1)
        cls_rows = lengths.cumsum(0) - lengths  # where each text starts in the packed order
    layers = bert.encoder.layer
    for i, layer in enumerate(layers):
        queries = cls_rows if i == len(layers) - 1 else None
        # transformers sets ``gradient_checkpointing`` on each layer it checkpoints (in training only).
        if getattr(layer, 'gradient_checkpointing', False) and layer.training and torch.is_grad_enabled():
            hidden = checkpoint(_layer, layer, hidden, rows, key_mask, (n, length), queries,
                                use_reentrant=False)
        else:
            hidden = _layer(layer, hidden, rows, key_mask, (n, length), queries)
    return hidden


def _layer(layer: nn.Module, hidden: torch.Tensor, rows, key_mask, shape, queries=None) -> torch.Tensor:
    """One ``BertLayer`` on packed ``[T, C]`` states; with ``queries`` (packed row indices) only
    those rows come out."""
    attn = layer.attention.self
    heads, dim = attn.num_attention_heads, attn.attention_head_size
    n, length = shape

    def padded(x: torch.Tensor, parts: int) -> torch.Tensor:
        """``[T, parts * C]`` -> ``[parts, N, heads, L, dim]``, zeros at the padding."""
        if rows is not None:
            x = x.new_zeros(n * length, x.shape[-1]).index_copy_(0, rows, x)
        return x.view(n, length, parts, heads, dim).permute(2, 0, 3, 1, 4)

    scale = dim ** -0.5
    if queries is None:
        q, k, v = padded(torch.cat([attn.query(hidden), attn.key(hidden), attn.value(hidden)], -1), 3)
        out = _attend(attn, q, k, v, key_mask, scale).transpose(1, 2).reshape(n * length, heads * dim)
        context = out if rows is None else out.index_select(0, rows)
        residual = hidden
    else:
        residual = hidden.index_select(0, queries)
        drop = _probability_dropout(attn, hidden)
        if drop is False:  # torch's dropout inside SDPA: keys and values as BertModel makes them
            k, v = padded(torch.cat([attn.key(hidden), attn.value(hidden)], -1), 2)
            q = attn.query(residual).view(n, 1, heads, dim).transpose(1, 2)
            context = _attend(attn, q, k, v, key_mask, scale).reshape(n, heads * dim)
        else:  # [CLS] alone asks: keys and values only through its query (attend_through_inputs)
            inputs = hidden if rows is None else hidden.new_zeros(n * length, hidden.shape[-1]).index_copy_(
                0, rows, hidden)
            context = attend_through_inputs(
                attn.query(residual).view(n, 1, -1), inputs.view(n, length, -1), attn.key.weight, attn.key.bias,
                attn.value.weight, attn.value.bias, heads, None if key_mask is None else key_mask.view(n, length),
                drop).view(n, -1)
    x = layer.attention.output(context, residual)  # dense, dropout, LayerNorm(. + residual)
    return layer.output(layer.intermediate(x), x)


def _probability_dropout(attn: nn.Module, like: torch.Tensor):
    """``BertSelfAttention``'s dropout on the probabilities as a function: None when there is none (eval,
    p = 0), the project's sampler when it draws the masks for tensors like ``like``, False when torch's
    dropout would."""
    p = attn.dropout.p if attn.training else 0.0  # BertSelfAttention's rule
    if p == 0:
        return None
    if isinstance(attn.dropout, Dropout) and uses_fast_masks(like):
        return lambda probs: dropout(probs, p)
    return False


def _attend(attn: nn.Module, q, k, v, key_mask, scale: float) -> torch.Tensor:
    """Scaled dot-product attention with ``BertSelfAttention``'s dropout on the probabilities.

    When that dropout is the encoder's fast one (:class:`cnclip_mm.models.dropout.Dropout`) and
    draws its own masks here, the math is written out (what SDPA runs on CPU with dropout anyway)
    so that the probabilities go through it; otherwise SDPA draws torch's masks.
    """
    drop = _probability_dropout(attn, q)
    if drop is None or drop is False:
        p = 0.0 if drop is None else attn.dropout.p
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p, scale=scale)
    return written_out_attention(q, k, v, key_mask, drop=drop)
