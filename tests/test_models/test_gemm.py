"""Linear products through oneDNN (cnclip_mm.models.gemm): same results and gradients as BLAS, the
backend chosen by the rule the docs give, and every tower's Linear on the route when it is on."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnclip_mm.models import gemm
from cnclip_mm.registry import MODELS

pytestmark = pytest.mark.usefixtures('restore_gemm_choice')


@pytest.fixture
def calls(monkeypatch):
    """Count oneDNN products; every product of a tiny model takes the route (no size floor)."""
    monkeypatch.setattr(gemm, 'MIN_MACS', 0)
    gemm._probe()  # its one product is not the test's
    counted = []
    real = gemm.onednn_product

    def counting(x, weight, bias):
        counted.append((tuple(x.shape), tuple(weight.shape)))
        return real(x, weight, bias)

    monkeypatch.setattr(gemm, 'onednn_product', counting)
    return counted


def test_linear_forward_and_gradients_equal_blas(calls):
    torch.manual_seed(0)
    x = torch.randn(3, 37, 48, requires_grad=True)
    w = torch.randn(80, 48, requires_grad=True)
    b = torch.randn(80, requires_grad=True)
    grad_out = torch.randn(3, 37, 80)
    results = {}
    for name in ('blas', 'onednn'):
        with gemm.backend(name):
            out = gemm.linear(x, w, b)
            results[name] = (out, *torch.autograd.grad(out, (x, w, b), grad_out))
    for got, want in zip(results['onednn'], results['blas']):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # forward and input gradient by oneDNN (the input gradient as x @ W with W's transposed view)
    assert calls == [((111, 48), (80, 48)), ((111, 80), (48, 80))]
    with gemm.backend('onednn'), torch.no_grad():
        torch.testing.assert_close(gemm.linear(x, w), F.linear(x, w), atol=1e-5, rtol=1e-5)
    assert len(calls) == 3


def test_route_stays_off_where_it_must(calls):
    x, w = torch.randn(4, 8), torch.randn(6, 8)
    with gemm.backend('onednn'):
        assert gemm.wants_onednn(x, w)
        assert not gemm.wants_onednn(x.bfloat16(), w.bfloat16())
        assert not gemm.wants_onednn(x.double(), w.double())
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not gemm.wants_onednn(x, w)
        traced = torch.jit.trace(lambda t: gemm.linear(t, w), (x,), check_trace=False)
        assert not calls and 'aten::linear' in str(traced.graph)  # what exports know
        torch.testing.assert_close(traced(x), F.linear(x, w))

        class Sub(torch.Tensor):
            pass
        assert not gemm.wants_onednn(x.as_subclass(Sub), w)
    with gemm.backend('blas'):
        assert not gemm.wants_onednn(x, w)


def test_size_floor_leaves_small_products_to_blas():
    with gemm.backend('onednn'):
        assert not gemm.wants_onednn(torch.randn(8, 768), torch.randn(512, 768))  # 3.1 M multiply-adds
        assert gemm.wants_onednn(torch.randn(1576, 768), torch.randn(3072, 768))  # a ViT-B/16 MLP at batch 8


def _tiny(cfg):
    torch.manual_seed(0)
    return MODELS.build(cfg)


VIT = dict(type='CLIPVisionTransformer', arch=dict(width=64, layers=3, heads=4, patch_size=8), img_size=32,
           output_dim=16)
BERT = dict(type='ChineseBertEncoder', arch=dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                                                 intermediate_size=96), vocab_size=200, fast_dropout=False)


def _features_and_grads(model, inputs, name, calls=None):
    """Features, inference features and gradients on backend ``name``; with ``calls``, the weight
    shapes oneDNN saw in the forward and in the backward."""
    with gemm.backend(name):
        start = len(calls or [])
        out = model(inputs)
        middle = len(calls or [])
        grads = torch.autograd.grad(out.square().sum(), [p for p in model.parameters() if p.requires_grad])
        phases = None if calls is None else ({w for _, w in calls[start:middle]},
                                             {w for _, w in calls[middle:]})
        with torch.no_grad():
            inference = model(inputs)
    return out.detach(), inference, grads, phases


@pytest.mark.parametrize('tower', ['vit', 'bert'])
def test_towers_give_the_same_features_and_gradients_on_either_backend(calls, tower):
    if tower == 'vit':
        model, inputs = _tiny(VIT), torch.randn(3, 3, 32, 32)
    else:
        model = _tiny(BERT).eval()  # dropout off: the two runs must see the same function
        inputs = torch.tensor([[101, 7, 8, 9, 102, 0], [101, 5, 102, 0, 0, 0], [101, 4, 4, 4, 4, 102]])
    blas = _features_and_grads(model, inputs, 'blas', calls)
    assert not calls
    onednn = _features_and_grads(model, inputs, 'onednn', calls)
    torch.testing.assert_close(onednn[0], blas[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(onednn[1], blas[1], atol=1e-5, rtol=1e-5)
    for got, want in zip(onednn[2], blas[2]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    forward, backward = onednn[3]
    if tower == 'vit':
        # patch embedding, q/k/v (and the last block's queries alone), attention output, both MLP products
        assert forward == {(64, 192), (192, 64), (64, 64), (256, 64), (64, 256)}
        # input gradients through the weights' transposed views (none for the patch embedding: images)
        assert backward == {(64, 192), (64, 64), (64, 256), (256, 64)}
    else:
        # query/key/value and attention output, intermediate, output
        assert forward == {(48, 48), (96, 48), (48, 96)}
        assert backward == {(48, 48), (48, 96), (96, 48)}
        assert sum(isinstance(m, gemm.Linear) for m in model.modules()) == 2 * 6


def test_grad_checkpointing_recomputes_on_the_route(calls):
    model, images = _tiny(VIT), torch.randn(2, 3, 32, 32)
    want = _features_and_grads(model, images, 'onednn')
    model.set_grad_checkpointing(True)
    model.train()
    got = _features_and_grads(model, images, 'onednn')
    torch.testing.assert_close(got[0], want[0])
    for g, w in zip(got[2], want[2]):
        torch.testing.assert_close(g, w)


def test_route_linears_keeps_parameters_keys_and_subclasses():
    class Own(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), Own(5, 3), nn.Sequential(nn.Linear(3, 2)))
    before = copy.deepcopy(model.state_dict())
    params = [id(p) for p in model.parameters()]
    assert gemm.route_linears(model) == 2
    assert [type(m) for m in model.modules()][1:] == [gemm.Linear, nn.ReLU, Own, nn.Sequential, gemm.Linear]
    assert [id(p) for p in model.parameters()] == params
    assert model.state_dict().keys() == before.keys()
    x = torch.randn(7, 4)
    with gemm.backend('blas'):
        want = model(x)
    with gemm.backend('onednn'):
        torch.testing.assert_close(model(x), want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('machine,vendor,resolved,why', [
    ('x86_64', 'AuthenticAMD', 'onednn', 'auto: AuthenticAMD CPU'),
    ('x86_64', 'HygonGenuine', 'onednn', 'auto: HygonGenuine CPU'),
    ('x86_64', 'GenuineIntel', 'blas', 'auto: Intel CPU'),
    ('aarch64', None, 'blas', 'auto: not a recognised x86 CPU (aarch64)'),
])
def test_auto_rule(monkeypatch, machine, vendor, resolved, why):
    monkeypatch.setattr(gemm.platform, 'machine', lambda: machine)
    monkeypatch.setattr(gemm, 'cpu_vendor', lambda: vendor)
    assert gemm.set_backend('auto') == resolved
    assert why in gemm.describe()
    assert gemm.set_backend('blas') == 'blas' and gemm.set_backend('onednn') == 'onednn'


def test_broken_onednn_leaves_auto_on_blas_and_refuses_onednn(monkeypatch):
    monkeypatch.setattr(gemm.platform, 'machine', lambda: 'x86_64')
    monkeypatch.setattr(gemm, 'cpu_vendor', lambda: 'AuthenticAMD')

    def broken(*args):
        raise RuntimeError('no kernel')

    monkeypatch.setattr(gemm, 'onednn_product', broken)
    gemm._state['probed'] = None
    assert gemm.set_backend('auto') == 'blas'
    assert "auto: oneDNN's Linear is not usable: no kernel" in gemm.describe()
    with pytest.raises(RuntimeError, match="gemm backend onednn: oneDNN's Linear is not usable: no kernel"):
        gemm.set_backend('onednn')


def test_bad_names_are_named(monkeypatch):
    with pytest.raises(ValueError, match="gemm backend 'mkl': expected one of auto, blas, onednn"):
        gemm.set_backend('mkl')
    monkeypatch.setenv(gemm.ENV, 'fast')
    gemm._state['resolved'] = None
    with pytest.raises(ValueError, match="environment variable CNCLIP_GEMM='fast'"):
        gemm.get_backend()
    monkeypatch.setenv(gemm.ENV, 'blas')
    assert gemm.get_backend() == 'blas' and gemm.get_choice() == 'blas'


def test_benchmark_times_the_same_products_both_ways():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
    import gemm as bench  # benchmarks/gemm.py
    products = bench._products(37, 24, 40)
    assert list(products) == ['forward', 'data grad', 'weight grad']
    for blas, onednn in products.values():
        torch.testing.assert_close(onednn(), blas(), atol=1e-5, rtol=1e-5)
