"""The oneDNN Linear route: results and gradients equal F.linear, and the backend rule the docs give."""
import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.cpu import onednn


def test_linear_forward_and_gradients_equal_f_linear(monkeypatch):
    products = []
    real = onednn.product
    monkeypatch.setattr(onednn, 'product', lambda x, w, b: products.append((x.shape, w.shape)) or real(x, w, b))
    monkeypatch.setattr(onednn, 'MIN_MACS', 0)
    torch.manual_seed(0)
    x = torch.randn(3, 37, 48, requires_grad=True)
    w = torch.randn(80, 48, requires_grad=True)
    b = torch.randn(80, requires_grad=True)
    grad_out = torch.randn(3, 37, 80)
    ours = onednn.linear(x, w, b)
    got = (ours, *torch.autograd.grad(ours, (x, w, b), grad_out))
    ref = F.linear(x, w, b)
    want = (ref, *torch.autograd.grad(ref, (x, w, b), grad_out))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)
    # forward and input gradient by oneDNN (the input gradient with W's transposed view)
    assert products == [((111, 48), (80, 48)), ((111, 80), (48, 80))]


def test_size_floor_and_dtypes():
    assert not onednn.worth_it(torch.randn(8, 768), torch.randn(512, 768))  # 3.1 M multiply-adds
    assert onednn.worth_it(torch.randn(1576, 768), torch.randn(3072, 768))  # a ViT-B/16 MLP at batch 8
    assert not onednn.worth_it(torch.randn(1576, 768).double(), torch.randn(3072, 768).double())


@pytest.mark.parametrize('machine, vendor, env, use', [
    ('x86_64', 'AuthenticAMD', None, True), ('x86_64', 'GenuineIntel', None, False),
    ('aarch64', None, None, False), ('x86_64', 'GenuineIntel', 'onednn', True),
    ('x86_64', 'AuthenticAMD', 'blas', False)])
def test_backend_rule(monkeypatch, machine, vendor, env, use):
    monkeypatch.setattr(onednn.platform, 'machine', lambda: machine)
    monkeypatch.setattr(onednn, 'cpu_vendor', lambda: vendor)
    if env is None:
        monkeypatch.delenv(onednn.ENV, raising=False)
    else:
        monkeypatch.setenv(onednn.ENV, env)
    assert onednn.resolve()[0] is use


def test_bad_backend_and_a_failing_probe(monkeypatch):
    monkeypatch.setenv(onednn.ENV, 'fast')
    with pytest.raises(ValueError, match="gemm backend 'fast' .*CNCLIP_GEMM"):
        onednn.resolve()
    monkeypatch.setattr(onednn, '_probed', {'why': 'this PyTorch build has no oneDNN'})
    monkeypatch.setattr(onednn, 'cpu_vendor', lambda: 'AuthenticAMD')
    monkeypatch.setattr(onednn.platform, 'machine', lambda: 'x86_64')
    assert onednn.resolve('auto') == (False, 'this PyTorch build has no oneDNN')
    with pytest.raises(RuntimeError, match='gemm backend onednn: this PyTorch build has no oneDNN'):
        onednn.resolve('onednn')
