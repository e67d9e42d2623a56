"""CpuFastPaths: which calls it reroutes, which it leaves to PyTorch, and that results equal the plain path."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnclip_mm.cpu import attention, dropout, mode, onednn
from cnclip_mm.cpu.mode import CpuFastPaths


@pytest.fixture
def counted(monkeypatch):
    """Count what each path runs; every product takes oneDNN (no size floor)."""
    calls = {'onednn': 0, 'dropout': 0, 'attention': 0}
    monkeypatch.setattr(onednn, 'MIN_MACS', 0)

    def counting(module, name, key):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[key] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)
    counting(onednn, 'linear', 'onednn')
    counting(dropout, 'dropout', 'dropout')
    counting(attention, 'written_out', 'attention')
    return calls


class _Block(nn.Module):
    """A Linear, a dropout and attention, called as plain modules / functions."""

    def __init__(self, width=32, heads=4, p=0.2):
        super().__init__()
        self.qkv, self.drop, self.heads, self.p = nn.Linear(width, 3 * width), nn.Dropout(p), heads, p

    def forward(self, x, mask=None):
        n, length, width = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        return self.drop(out.transpose(1, 2).reshape(n, length, width))


def test_routes_each_call_and_matches_the_plain_path(counted):
    torch.manual_seed(0)
    block = _Block().eval()
    x = torch.randn(2, 9, 32, requires_grad=True)
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    mask[1, ..., 6:] = False
    grad = torch.randn(2, 9, 32)
    ref = block(x, mask)
    ref_grads = torch.autograd.grad(ref, (x, *block.parameters()), grad)
    with CpuFastPaths():
        out = block(x, mask)
        grads = torch.autograd.grad(out, (x, *block.parameters()), grad)
        F.linear(input=x, weight=block.qkv.weight)  # keywords too
    assert counted == {'onednn': 2, 'dropout': 0, 'attention': 1}  # eval: 9 keys, written out (short)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_training_dropout_has_torch_distribution(counted):
    torch.manual_seed(0)
    block = _Block(p=0.3).train()
    with CpuFastPaths():
        block(torch.randn(2, 9, 32))
        kept = nn.Dropout(0.3)(torch.ones(400, 500))
    assert counted == {'onednn': 1, 'dropout': 2, 'attention': 1}  # the probabilities' dropout, the output's
    assert torch.equal(kept.unique(), torch.tensor([0.0, 1 / 0.7]))
    assert abs((kept == 0).float().mean().item() - 0.3) < 5 * (0.3 * 0.7 / kept.numel()) ** 0.5


def test_attention_with_dropout_equals_its_math(counted):
    q, k, v = torch.randn(3, 2, 4, 6, 8).unbind(0)
    mask = torch.zeros(2, 1, 1, 6)
    mask[1, ..., 4:] = float('-inf')
    with CpuFastPaths():
        torch.manual_seed(7)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.4)
    torch.manual_seed(7)
    keep = dropout.keep_mask((2, 4, 6, 6), 0.4)
    probs = (q @ k.transpose(-2, -1) * 8 ** -0.5 + mask).softmax(-1)
    torch.testing.assert_close(out, (probs * keep / 0.6) @ v, atol=1e-6, rtol=1e-5)


def test_short_attention_without_dropout_is_written_out_and_equals_sdpa(counted):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, attention.SHORT_KEYS, 8, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 1, 1, attention.SHORT_KEYS, dtype=torch.bool)
    mask[1, ..., 60:] = False
    grad = torch.randn(2, 3, attention.SHORT_KEYS, 8)
    for attn_mask in (None, mask):
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=0.3)
        ref_grads = torch.autograd.grad(ref, (q, k, v), grad)
        with CpuFastPaths(['short_attention']):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=0.3)
            grads = torch.autograd.grad(out, (q, k, v), grad)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        for got, want in zip(grads, ref_grads):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert counted['attention'] == 2


def test_long_causal_or_dropout_attention_stays_with_sdpa_on_the_short_path(counted):
    q = torch.randn(1, 2, attention.SHORT_KEYS + 1, 8)
    short = torch.randn(1, 2, 9, 8)
    with CpuFastPaths(['short_attention']):
        F.scaled_dot_product_attention(q, q, q)  # over SHORT_KEYS keys: the flash kernel pays there
        F.scaled_dot_product_attention(short, short, short, is_causal=True)
        F.scaled_dot_product_attention(short, short, short, dropout_p=0.3)  # the dropout path's, not on
        F.dropout(torch.ones(4, 4), 0.5)
    assert counted == {'onednn': 0, 'dropout': 0, 'attention': 0}


def test_passes_through_under_autocast_tracing_compile_meta_and_subclasses(counted):
    torch.manual_seed(0)
    lin, x = nn.Linear(8, 6), torch.randn(4, 8)
    q = torch.randn(1, 2, 5, 4)
    with CpuFastPaths():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            lin(x)
            F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
        traced = torch.jit.trace(lin, (x,), check_trace=False)
        assert 'aten::linear' in str(traced.graph)  # what exports see
        compiled = torch.compile(nn.Sequential(lin, nn.Dropout(0.5)), fullgraph=True, backend='aot_eager')
        compiled(x)
        lin.to('meta')(x.to('meta'))
        F.dropout(torch.ones(4, 4, device='meta'), 0.5)

        class Sub(torch.Tensor):
            pass
        F.linear(x.as_subclass(Sub), torch.randn(6, 8))
        F.dropout(torch.ones(4, 4).as_subclass(Sub), 0.5)
        F.dropout(torch.ones(4, 4), 0.5, training=False)
        F.dropout(torch.ones(4, 4), 0.5, inplace=True)
        w = torch.randn(6, 8)
        torch.func.vmap(lambda t: F.linear(t, w))(torch.randn(3, 2, 8))
    assert counted == {'onednn': 0, 'dropout': 0, 'attention': 0}


def test_only_the_chosen_paths(counted):
    lin = nn.Linear(8, 6)
    q = torch.randn(1, 2, 5, 4)
    with CpuFastPaths(['dropout']):
        lin(torch.randn(4, 8))
        F.dropout(torch.ones(4, 4), 0.5)
        F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
        F.scaled_dot_product_attention(q, q, q)  # short, but the short path is off
    assert counted == {'onednn': 0, 'dropout': 1, 'attention': 1}
    with CpuFastPaths(['onednn']):
        F.dropout(torch.ones(4, 4), 0.5)
        F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)  # the dropout path off: torch's masks
        F.scaled_dot_product_attention(q, q, q)
    assert counted == {'onednn': 0, 'dropout': 1, 'attention': 1}
    with pytest.raises(ValueError, match="unknown CPU fast path.*'gemm'"):
        CpuFastPaths(['gemm'])


def test_hooks_and_wrappers_still_see_the_modules():
    lin = nn.Linear(8, 6)
    seen = []
    lin.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with CpuFastPaths():
        lin(torch.randn(4, 8))
    assert seen == [torch.Size([4, 6])] and not mode.active()


class _Marker(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def test_batches_are_fetched_with_the_fast_paths_suspended_and_the_stack_restored():
    seen = []

    def batches():
        for i in range(3):
            seen.append((mode.active(), [type(m) for m in torch.overrides._get_current_function_mode_stack()]))
            yield i

    with _Marker(), CpuFastPaths(), _Marker():
        before = torch.overrides._get_current_function_mode_stack()
        got = [(batch, mode.active()) for batch in mode.fetched_outside(batches())]
        assert torch.overrides._get_current_function_mode_stack() == before
    assert got == [(0, True), (1, True), (2, True)]  # the loop body runs with the paths on
    assert seen == [(False, [_Marker, _Marker])] * 3  # each fetch without them, other modes kept
    with mode.suspended():  # nothing to suspend: a no-op
        assert torch.overrides._get_current_function_mode_stack() == []
