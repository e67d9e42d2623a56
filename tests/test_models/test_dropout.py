"""cnclip_mm.models.dropout: the distribution and gradient of dropout, masks that follow torch's RNG."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.models import dropout as fast
from cnclip_mm.models.text_encoders import ChineseBertEncoder
from cnclip_mm.models.text_encoders.packed_bert import _attend


@pytest.fixture
def fast_masks(monkeypatch):
    """Take the fast path whatever the CPU (torch samples serially on the AMD test machines anyway)."""
    monkeypatch.setattr(fast, 'SERIAL_SAMPLING', True)


@pytest.mark.parametrize('p', [0.1, 0.5])
def test_keep_mask_probability_and_shape(p):
    mask = fast.keep_mask((1000, 2000), p)
    assert mask.dtype == torch.bool and mask.shape == (1000, 2000)
    sigma = (p * (1 - p) / mask.numel()) ** 0.5
    assert abs((1 - mask.float().mean().item()) - p) < 5 * sigma
    # Neighbouring elements (the two halves of one 64-bit draw) are independent.
    pairs = mask.view(-1, 2).float()
    assert abs((pairs[:, 0] * pairs[:, 1]).mean().item() - (1 - p) ** 2) < 5 * sigma
    assert fast.keep_mask((3, 5), 1.0).sum() == 0 and fast.keep_mask((3, 5), 0.0).all()
    assert fast.keep_mask((0, 4), 0.1).shape == (0, 4)


def test_masks_follow_torch_rng_state():
    torch.manual_seed(3)
    a = fast.keep_mask((64, 33), 0.3)
    state = torch.get_rng_state()
    b = fast.keep_mask((64, 33), 0.3)
    torch.manual_seed(3)
    assert torch.equal(fast.keep_mask((64, 33), 0.3), a)
    torch.set_rng_state(state)
    assert torch.equal(fast.keep_mask((64, 33), 0.3), b)
    assert not torch.equal(a, b)


def test_dropout_values_gradient_and_modes(fast_masks):
    x = torch.randn(300, 70, requires_grad=True)
    torch.manual_seed(0)
    out = fast.dropout(x, 0.25)
    torch.manual_seed(0)
    keep = fast.keep_mask(x.shape, 0.25)
    torch.testing.assert_close(out, torch.where(keep, x * (1 / 0.75), 0.0), atol=0, rtol=0)
    out.backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, keep.float() * (1 / 0.75), atol=0, rtol=0)
    assert fast.dropout(x, 0.25, training=False) is x and fast.dropout(x, 0.0) is x
    assert torch.equal(fast.dropout(x, 1.0), torch.zeros_like(x))
    half = fast.dropout(x.detach().bfloat16(), 0.5)
    assert half.dtype == torch.bfloat16 and set(torch.unique(half == 0).tolist()) == {False, True}
    module = fast.Dropout(0.25)
    assert module(x).shape == x.shape and module.eval()(x) is x


def test_vendor_rule():
    assert not fast.torch_mask_is_serial('GenuineIntel', mkl=True)
    assert fast.torch_mask_is_serial('AuthenticAMD', mkl=True)
    assert fast.torch_mask_is_serial('GenuineIntel', mkl=False)


def test_encoder_swaps_bert_dropouts(fast_masks):
    arch = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    swapped = ChineseBertEncoder(arch=arch, vocab_size=200)
    kept = ChineseBertEncoder(arch=arch, vocab_size=200, fast_dropout=False)
    ours = [m for m in swapped.modules() if isinstance(m, torch.nn.Dropout)]
    theirs = [m for m in kept.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(ours) == len(theirs) == 1 + 3 * 2  # embeddings; per layer: probabilities, attention output, FFN
    assert all(type(m) is fast.Dropout for m in ours) and all(type(m) is torch.nn.Dropout for m in theirs)
    assert [m.p for m in ours] == [m.p for m in theirs]


def test_attention_probabilities_dropout(fast_masks):
    q, k, v = torch.randn(3, 2, 4, 6, 8).unbind(0)
    key_mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    key_mask[1, ..., 4:] = False
    attn = SimpleNamespace(dropout=fast.Dropout(0.4), training=True)
    torch.manual_seed(7)
    out = _attend(attn, q, k, v, key_mask, 8 ** -0.5)
    torch.manual_seed(7)
    keep = fast.keep_mask((2, 4, 6, 6), 0.4)
    probs = (q @ k.transpose(-2, -1) * 8 ** -0.5).masked_fill(~key_mask, float('-inf')).softmax(-1)
    torch.testing.assert_close(out, (probs * keep / 0.6) @ v, atol=1e-6, rtol=1e-5)
    attn.training = False  # no dropout: SDPA itself
    torch.testing.assert_close(_attend(attn, q, k, v, key_mask, 8 ** -0.5),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask), atol=0, rtol=0)
