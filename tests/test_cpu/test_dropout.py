"""The SFC64 dropout sampler: torch's distribution and gradient, masks that follow torch's RNG state."""
import pytest
import torch

from cnclip_mm.cpu import dropout as fast


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


def test_dropout_values_and_gradient():
    x = torch.randn(300, 70, requires_grad=True)
    torch.manual_seed(0)
    out = fast.dropout(x, 0.25)
    torch.manual_seed(0)
    keep = fast.keep_mask(x.shape, 0.25)
    torch.testing.assert_close(out, torch.where(keep, x * (1 / 0.75), 0.0), atol=0, rtol=0)
    out.backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, keep.float() * (1 / 0.75), atol=0, rtol=0)
    assert torch.equal(fast.dropout(x, 1.0), torch.zeros_like(x))
    half = fast.dropout(x.detach().bfloat16(), 0.5)
    assert half.dtype == torch.bfloat16 and set(torch.unique(half == 0).tolist()) == {False, True}
