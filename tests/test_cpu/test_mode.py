"""CpuFastPaths: which calls it sends to oneDNN, which it leaves to PyTorch, and that results equal the plain path."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnclip_mm.cpu import mode, onednn
from cnclip_mm.cpu.mode import CpuFastPaths


@pytest.fixture
def routed(monkeypatch):
    """Count the products that take oneDNN; every size qualifies (no floor)."""
    calls = []
    monkeypatch.setattr(onednn, 'MIN_MACS', 0)
    real = onednn.linear
    monkeypatch.setattr(onednn, 'linear', lambda *args: calls.append(args[0].shape) or real(*args))
    return calls


class _Block(nn.Module):
    """A Linear, attention and dropout, called as plain modules / functions."""

    def __init__(self, width=32, heads=4):
        super().__init__()
        self.qkv, self.proj, self.drop, self.heads = nn.Linear(width, 3 * width), nn.Linear(width, width), \
            nn.Dropout(0.2), heads

    def forward(self, x):
        n, length, width = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.drop(self.proj(out.transpose(1, 2).reshape(n, length, width)))


def test_linears_take_onednn_and_match_the_plain_path(routed):
    torch.manual_seed(0)
    block = _Block().eval()
    x = torch.randn(2, 9, 32, requires_grad=True)
    grad = torch.randn(2, 9, 32)
    ref = block(x)
    ref_grads = torch.autograd.grad(ref, (x, *block.parameters()), grad)
    with CpuFastPaths():
        out = block(x)
        grads = torch.autograd.grad(out, (x, *block.parameters()), grad)
        F.linear(input=x, weight=block.proj.weight)  # keywords too
    assert len(routed) == 3
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_dropout_and_attention_stay_pytorchs(routed):
    """Only F.linear is rerouted: the same seed gives torch's own dropout masks and attention."""
    block = _Block().train()
    x = torch.randn(2, 9, 32)
    torch.manual_seed(1)
    ref = block(x)
    with CpuFastPaths():
        torch.manual_seed(1)
        out = block(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(out == 0, ref == 0)


def test_passes_through_under_autocast_tracing_compile_meta_and_subclasses(routed):
    torch.manual_seed(0)
    lin, x = nn.Linear(8, 6), torch.randn(4, 8)
    with CpuFastPaths():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            lin(x)
        traced = torch.jit.trace(lin, (x,), check_trace=False)
        assert 'aten::linear' in str(traced.graph)  # what exports see
        compiled = torch.compile(nn.Sequential(lin, nn.Dropout(0.5)), fullgraph=True, backend='aot_eager')
        compiled(x)
        lin.double()(x.double())
        nn.Linear(8, 6, device='meta')(x.to('meta'))

        class Sub(torch.Tensor):
            pass
        F.linear(x.as_subclass(Sub), torch.randn(6, 8))
        w = torch.randn(6, 8)
        torch.func.vmap(lambda t: F.linear(t, w))(torch.randn(3, 2, 8))
    assert routed == []


def test_hooks_still_see_the_modules():
    lin = nn.Linear(8, 6)
    seen = []
    lin.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with CpuFastPaths():
        lin(torch.randn(4, 8))
    assert seen == [torch.Size([4, 6])] and not mode.active()
