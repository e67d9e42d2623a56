"""The faster feature paths give the features of the plain computation (to float rounding)."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from cnclip_mm.registry import MODELS


def _vit():
    init_default_scope('cnclip_mm')
    torch.manual_seed(0)
    return MODELS.build(dict(type='CLIPVisionTransformer', arch=dict(width=64, layers=3, heads=4, patch_size=8),
                             img_size=32, output_dim=16))


def test_vit_patch_embedding_matmul_equals_the_convolution():
    vit = _vit()
    images = torch.randn(3, 3, 32, 32, requires_grad=True)
    conv = vit.conv1(images).flatten(2).transpose(1, 2)
    torch.testing.assert_close(vit.embed_patches(images), conv, atol=1e-5, rtol=1e-5)
    grads = [torch.autograd.grad(out.square().sum(), (images, vit.conv1.weight))
             for out in (vit.embed_patches(images), conv)]
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def _full_tokens_reference(vit, images):
    """Every token through every block, then the class token read out (the stem as a convolution)."""
    x = vit.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([vit.class_embedding.expand(len(x), 1, -1), x], dim=1)
    x = vit.ln_pre(x + vit.positional_embedding)
    return vit.ln_post(vit.transformer(x)[:, 0]) @ vit.proj


def test_vit_class_token_only_last_block_matches_full():
    vit = _vit()
    images = torch.randn(3, 3, 32, 32)
    fast = vit(images)
    ref = _full_tokens_reference(vit, images)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    # Gradients agree as well (training uses the same path).
    grads = [torch.autograd.grad(out.square().sum(), vit.transformer.resblocks[-1].attn.in_proj_weight)[0]
             for out in (vit(images), _full_tokens_reference(vit, images))]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)
    vit.set_grad_checkpointing(True)
    vit.train()
    torch.testing.assert_close(vit(images), ref, atol=1e-5, rtol=1e-5)


def test_vit_inference_writes_qkv_and_mlp_into_one_buffer_per_forward(monkeypatch):
    from cnclip_mm.models.backbones import vit as vit_module
    vit = _vit().eval()
    images = torch.randn(3, 3, 32, 32)
    handed = []
    real = vit_module.scratch

    def spy(buffers, key, rows, cols, like):
        buf = real(buffers, key, rows, cols, like)
        if buf is not None:
            handed.append((key, rows, buf.data_ptr()))
        return buf

    monkeypatch.setattr(vit_module, 'scratch', spy)
    with torch.inference_mode():
        fast = vit(images)
    # two full blocks: each kind of buffer made once and written by both (the last block, class token
    # only, gets a small MLP buffer of its own)
    full = [h for h in handed if h[1] == 3 * 17]
    assert sorted(k for k, _, _ in full) == ['mlp', 'mlp', 'qkv', 'qkv']
    assert len({p for k, _, p in full if k == 'qkv'}) == 1 and len({p for k, _, p in full if k == 'mlp'}) == 1
    # bit-identical to the path without buffers, and to the autograd path
    monkeypatch.setattr(vit_module, 'scratch', lambda *args: None)
    with torch.inference_mode():
        plain = vit(images)
    assert torch.equal(fast, plain)
    handed.clear()
    monkeypatch.setattr(vit_module, 'scratch', spy)
    assert torch.equal(vit(images).detach(), fast)
    assert handed == []  # gradients on: no shared buffers


def test_quick_gelu_mlp_matches_the_textbook_formula():
    """c_proj(h * sigmoid(1.702 h)), h = c_fc(x): values (with and without autograd) and gradients."""
    mlp = _vit().transformer.resblocks[0].mlp
    x = torch.randn(2, 5, 64, requires_grad=True)

    def textbook(x):
        h = mlp.c_fc(x)
        return mlp.c_proj(h * torch.sigmoid(1.702 * h))

    out, ref = mlp(x), textbook(x)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(mlp(x), ref, atol=1e-6, rtol=1e-5)
    params = [x, mlp.c_fc.weight, mlp.c_fc.bias, mlp.c_proj.weight, mlp.c_proj.bias]
    for got, want in zip(torch.autograd.grad(out.square().sum(), params),
                         torch.autograd.grad(ref.square().sum(), params)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # Frozen weights (a locked tower still passing gradients down), and a leaf input with no grad.
    mlp.requires_grad_(False)
    torch.testing.assert_close(torch.autograd.grad(mlp(x).square().sum(), x)[0],
                               torch.autograd.grad(textbook(x).square().sum(), x)[0], atol=1e-5, rtol=1e-4)
    mlp.requires_grad_(True)
    got = torch.autograd.grad(mlp(x.detach()).square().sum(), mlp.c_fc.weight)[0]
    torch.testing.assert_close(got, torch.autograd.grad(textbook(x.detach()).square().sum(), mlp.c_fc.weight)[0],
                               atol=1e-5, rtol=1e-4)


def test_quick_gelu_mlp_backward_passes_gradcheck():
    """The hand-written backward against finite differences, in float64."""
    from cnclip_mm.models.backbones.vit import _QuickGELUMLPFunction
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
              for shape in ((4, 6), (10, 6), (10,), (6, 10), (6,))]
    assert torch.autograd.gradcheck(_QuickGELUMLPFunction.apply, inputs)


def _bert(bucket_size=4):
    init_default_scope('cnclip_mm')
    torch.manual_seed(0)
    return MODELS.build(dict(type='ChineseBertEncoder', vocab_size=300, bucket_size=bucket_size,
                             arch=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=64))).eval()


def _ids(n=20, context=16):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (n, context), generator=g)
    for i, length in enumerate(torch.randint(2, context - 3, (n,), generator=g).tolist()):
        ids[i, length:] = 0  # every row ends in padding, so trimming has work to do
    return ids


def test_text_trimming_and_buckets_match_untrimmed():
    bert, ids = _bert(), _ids()
    with torch.no_grad():
        ref = bert.bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]
        bucketed = bert(ids)  # 20 rows > 2 x 4: length-sorted buckets
    trimmed = bert(ids)  # autograd on: one batch cut to its longest text
    torch.testing.assert_close(bucketed, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trimmed.detach(), ref, atol=1e-5, rtol=1e-5)
    trimmed.sum().backward()  # the trimmed path trains
    assert bert.bert.embeddings.word_embeddings.weight.grad is not None


def test_bf16_opt_in_cosine(tiny_model_cfg):
    """encode_images / encode_texts(bf16=True): the opt-in bf16 path stays within cosine 0.999 of fp32."""
    from cnclip_mm.apis.inference import encode_images, encode_texts
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg).eval()
    images = [np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(3)]
    texts = ['一只在草地上奔跑的狗', '猫', '蓝色背景上左上角有一个大的红色圆形'] * 3
    for encode, data in ((encode_images, images), (encode_texts, texts)):
        ref, low = encode(model, data), encode(model, data, bf16=True)
        assert not torch.equal(ref, low)  # bf16 really ran
        assert F.cosine_similarity(low, ref).min() >= 0.999


def _packable_ids():
    """[CLS] first in every row: mixed lengths, a full-length row, a row of only [CLS][SEP]."""
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 300, (5, 12), generator=g)
    ids[:, 0] = 101
    for i, length in enumerate((12, 7, 2, 5, 9)):
        ids[i, length - 1] = 102
        ids[i, length:] = 0
    return ids


def _bert_model_cls(bert, ids):
    """The plain computation: transformers' BertModel on the padded batch, [CLS] read out."""
    return bert.bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]


def _spy_paths(bert, monkeypatch):
    """Count BertModel.forward calls and packed layer calls."""
    from cnclip_mm.models.text_encoders import packed_bert
    calls = dict(plain=0, layers=0)
    plain_forward, packed_layer = bert.bert.forward, packed_bert._layer

    def forward(*args, **kwargs):
        calls['plain'] += 1
        return plain_forward(*args, **kwargs)

    def layer(*args, **kwargs):
        calls['layers'] += 1
        return packed_layer(*args, **kwargs)

    monkeypatch.setattr(bert.bert, 'forward', forward)
    monkeypatch.setattr(packed_bert, '_layer', layer)
    return calls


def test_packed_text_tower_matches_bert_model(monkeypatch):
    """Packed real tokens and a [CLS]-only last layer: BertModel's features and gradients."""
    bert = _bert()
    ids, full = _packable_ids(), torch.randint(5, 300, (3, 12))
    with torch.no_grad():
        refs = [_bert_model_cls(bert, x) for x in (ids, full)]
    calls = _spy_paths(bert, monkeypatch)
    with torch.no_grad():
        for x, ref in zip((ids, full), refs):
            torch.testing.assert_close(bert(x), ref, atol=1e-5, rtol=1e-5)
        assert calls == dict(plain=0, layers=4)  # the packed path ran, two layers per batch
        # A padded first column (no [CLS]) is left to BertModel.
        lead = ids.clone()
        lead[1, 0] = 0
        torch.testing.assert_close(bert(lead), _bert_model_cls(bert, lead), atol=1e-5, rtol=1e-5)
        assert calls['plain'] == 2
        # So are configs the packed path does not implement.
        from cnclip_mm.models.text_encoders.packed_bert import can_pack
        mask = ids != 0
        assert can_pack(bert.bert, mask)
        for key, value in (('is_decoder', True), ('add_cross_attention', True),
                           ('position_embedding_type', 'relative_key'), ('chunk_size_feed_forward', 4)):
            config = copy.deepcopy(bert.bert.config)
            setattr(config, key, value)
            assert not can_pack(SimpleNamespace(config=config), mask), key
    layers = bert.bert.encoder.layer
    params = [bert.bert.embeddings.word_embeddings.weight, bert.bert.embeddings.position_embeddings.weight,
              layers[0].attention.self.query.weight, layers[0].attention.self.value.bias,
              layers[1].attention.self.key.weight, layers[1].attention.output.LayerNorm.weight,
              layers[1].intermediate.dense.weight, layers[1].output.dense.bias]
    for got, want in zip(torch.autograd.grad(bert(ids).square().sum(), params),
                         torch.autograd.grad(_bert_model_cls(bert, ids).square().sum(), params)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        low = bert(ids)
    assert not torch.equal(low, refs[0])  # bf16 matmuls really ran (LayerNorm gives fp32)
    assert F.cosine_similarity(low.float(), refs[0]).min() >= 0.999


def test_packed_text_tower_trains_with_dropout_and_checkpointing(monkeypatch):
    bert, ids = _bert().train(), _packable_ids()
    calls = _spy_paths(bert, monkeypatch)
    first, second = bert(ids), bert(ids)
    assert not torch.equal(first, second) and first.isfinite().all()  # dropout is on
    # Checkpointing recomputes each layer in backward (same RNG state): the same values and gradients.
    runs = []
    for checkpointing in (False, True):
        bert.set_grad_checkpointing(checkpointing)
        calls['layers'] = 0
        torch.manual_seed(5)
        out = bert(ids)
        grads = torch.autograd.grad(out.square().sum(), list(bert.parameters()), allow_unused=True)
        runs.append((out, grads, calls['layers']))
    torch.testing.assert_close(runs[0][0], runs[1][0], atol=0, rtol=0)
    for a, b in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert (runs[0][2], runs[1][2]) == (2, 4)
    assert calls['plain'] == 0
    # The attention-probability dropout alone (inside scaled_dot_product_attention) is on as well.
    for name, module in bert.named_modules():
        if isinstance(module, torch.nn.Dropout) and not name.endswith('attention.self.dropout'):
            module.p = 0.0
    assert not torch.equal(bert(ids), bert(ids))
    # Without dropout, training mode (checkpointing still on) gives BertModel's numbers.
    for module in bert.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.testing.assert_close(bert(ids), _bert_model_cls(bert, ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('tokens', [17, 150])  # written out / SDPA (vit.SHORT_ATTENTION = 100)
def test_vit_attention_matches_sdpa(tokens):
    from cnclip_mm.models.backbones import vit
    g = torch.Generator().manual_seed(tokens)
    q, k, v = (torch.randn(2, 3, tokens, 16, generator=g, requires_grad=True) for _ in range(3))
    grad = torch.randn(2, 3, tokens, 16, generator=g)
    ours = torch.autograd.grad(vit.attention(q, k, v), (q, k, v), grad)
    ref = torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), grad)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(vit.attention(q, k, v), F.scaled_dot_product_attention(q, k, v),
                               atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('queries', [1, 3])
def test_attention_of_few_queries_through_the_inputs_equals_projected_keys_and_values(queries):
    from cnclip_mm.models.backbones.vit import PackedSelfAttention
    torch.manual_seed(0)
    attn = PackedSelfAttention(64, 4)
    torch.nn.init.normal_(attn.in_proj_weight, std=0.2)
    torch.nn.init.normal_(attn.in_proj_bias, std=0.5)  # key biases included: softmax must not see them
    x = torch.randn(2, 9, 64, requires_grad=True)
    few, full = attn(x, queries), attn(x)[:, :queries]
    torch.testing.assert_close(few, full, atol=1e-5, rtol=1e-5)
    params = (x, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight)
    grads = [torch.autograd.grad(out.square().sum(), params) for out in (attn(x, queries), attn(x)[:, :queries])]
    for got, want in zip(*grads):  # float32 sums in another order (exact in float64: the test below)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, queries), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('dropped', [False, True])
def test_attention_through_inputs_with_padding_and_dropout_equals_written_out(dropped):
    from cnclip_mm.models.backbones.utils import attend_through_inputs, written_out_attention
    torch.manual_seed(0)
    n, length, width, heads = 3, 7, 32, 4
    # float64: the two orders of summation agree to rounding far below the tolerance (the algebra is exact)
    x = torch.randn(n, length, width, dtype=torch.float64, requires_grad=True)
    w_q, w_k, w_v = (torch.randn(width, width, dtype=torch.float64, requires_grad=True) for _ in range(3))
    b_k, b_v = (torch.randn(width, dtype=torch.float64, requires_grad=True) for _ in range(2))
    mask = torch.ones(n, length, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    keep = (torch.rand(n, heads, 1, length) > 0.3).double() / 0.7 if dropped else None

    def heads_of(t):
        return t.unflatten(-1, (heads, -1)).transpose(1, 2)

    q = x[:, :1] @ w_q.t()
    want = written_out_attention(heads_of(q), heads_of(x @ w_k.t() + b_k), heads_of(x @ w_v.t() + b_v),
                                 mask[:, None, None, :], (lambda p: p * keep) if dropped else None)
    want = want.transpose(1, 2).reshape(n, 1, width)
    got = attend_through_inputs(q, x, w_k, b_k, w_v, b_v, heads, mask,
                                (lambda p: p * keep.view(n, heads, length)) if dropped else None)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    params = (x, w_q, w_k, b_k, w_v, b_v)
    got_grads = torch.autograd.grad(got.square().sum(), params, retain_graph=True)  # q is shared
    for g, w in zip(got_grads, torch.autograd.grad(want.square().sum(), params)):
        torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-9)
