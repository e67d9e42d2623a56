"""bf16 matrix ops as fp32 kernels on bf16 values: same math as bf16 kernels, forward and backward."""
import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.cpu import bf16 as bf16_module
from cnclip_mm.cpu.bf16 import Bf16GemmAsFp32, bf16_gemm_context
from cnclip_mm.engine import AutocastOptimWrapper
from cnclip_mm.engine.optimizers import autocast_wrapper
from cnclip_mm.registry import MODELS

bf16 = torch.bfloat16


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(bf16)


@pytest.mark.parametrize('op, args', [
    (torch.mm, lambda: (_rand(5, 7), _rand(7, 3, seed=1))),
    (torch.addmm, lambda: (_rand(3), _rand(5, 7, seed=1), _rand(7, 3, seed=2))),
    (torch.bmm, lambda: (_rand(2, 5, 7), _rand(2, 7, 3, seed=1))),
    (torch.baddbmm, lambda: (_rand(2, 5, 3), _rand(2, 5, 7, seed=1), _rand(2, 7, 3, seed=2))),
    (torch.mv, lambda: (_rand(5, 7), _rand(7, seed=1))),
    (torch.dot, lambda: (_rand(7), _rand(7, seed=1))),
    (F.conv2d, lambda: (_rand(2, 3, 8, 8), _rand(4, 3, 3, 3, seed=1))),
])
def test_each_matrix_op_is_the_fp32_kernel_rounded_to_bf16(op, args):
    args = args()
    with Bf16GemmAsFp32():
        got = op(*args)
    assert got.dtype == bf16
    torch.testing.assert_close(got, op(*(a.float() for a in args)).to(bf16), rtol=0, atol=0)
    torch.testing.assert_close(got.float(), op(*args).float(), rtol=2e-2, atol=2e-2)  # PyTorch's bf16 kernel


def test_flash_attention_and_backward_keep_native_dtypes():
    q, k, v = (_rand(2, 4, 9, 8, seed=s).requires_grad_() for s in range(3))
    with Bf16GemmAsFp32():
        out = F.scaled_dot_product_attention(q, k, v)
        grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    ref = F.scaled_dot_product_attention(q, k, v)
    ref_grads = torch.autograd.grad(ref.float().square().sum(), (q, k, v))
    assert out.dtype == bf16 and all(g.dtype == bf16 for g in grads)
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.float(), want.float(), rtol=5e-2, atol=5e-2)


def test_fp32_ops_pass_through_untouched():
    a, b = torch.randn(4, 5), torch.randn(5, 6)
    with Bf16GemmAsFp32():
        assert torch.equal(a @ b, torch.mm(a, b))


def test_choice_auto_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(bf16_module, 'cpu_has_native_bf16_gemm', lambda: False)
    assert isinstance(bf16_gemm_context('auto'), Bf16GemmAsFp32)
    assert not isinstance(bf16_gemm_context('auto', device_type='cuda'), Bf16GemmAsFp32)
    assert not isinstance(bf16_gemm_context('native'), Bf16GemmAsFp32)
    monkeypatch.setattr(bf16_module, 'cpu_has_native_bf16_gemm', lambda: True)
    assert not isinstance(bf16_gemm_context('auto'), Bf16GemmAsFp32)
    assert isinstance(bf16_gemm_context('fp32'), Bf16GemmAsFp32)
    with pytest.raises(ValueError, match="bf16_gemm must be one of .* got 'fast'"):
        AutocastOptimWrapper(optimizer=torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1),
                             bf16_gemm='fast')


class _Recording(Bf16GemmAsFp32):
    """Counts the matrix ops it converts, per phase."""
    phase, counts = None, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in bf16_module._MATRIX_OPS:
            _Recording.counts[_Recording.phase] = _Recording.counts.get(_Recording.phase, 0) + 1
        return super().__torch_dispatch__(func, types, args, kwargs)


def _tiny_clip():
    """Its own sizes (not conftest's TINY_MODEL): the 0.999 gradient cosine below is measured on these."""
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='ChineseCLIP', embed_dim=16, tokenizer=None,
        image_encoder=dict(type='CLIPVisionTransformer', arch=dict(width=32, layers=2, heads=4, patch_size=8),
                           img_size=32, output_dim=16),
        text_encoder=dict(type='ChineseBertEncoder', vocab_size=200,
                          arch=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64))))


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 200, (3, 10), generator=g)
    ids[:, 0], ids[1, 6:], ids[2, 4:] = 101, 0, 0
    return dict(images=torch.randn(3, 3, 32, 32, generator=g), text_ids=ids,
                image_slots=[0, 1, 2], text_slots=[0, 1, 2])


def _step_gradients(wrapper_kind):
    """A tiny CLIP's gradients after one step through AutocastOptimWrapper(bf16_gemm=...), or in fp32 (None)."""
    model = _tiny_clip().eval()  # dropout off: every run sees the same network
    if wrapper_kind is None:
        model(inputs=_inputs(), mode='loss')['loss'].backward()
    else:
        wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.0), bf16_gemm=wrapper_kind)
        _Recording.phase = 'forward'
        with wrapper.optim_context(model):
            loss = model(inputs=_inputs(), mode='loss')['loss']
        _Recording.phase = 'backward'
        wrapper.backward(loss)
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).double()


@pytest.mark.parametrize('choice', ['fp32', 'native'])
def test_autocast_wrapper_train_step_runs_forward_and_backward_in_the_chosen_kernels(monkeypatch, choice):
    """One bf16 step of a tiny CLIP (ViT: conv, flash attention; BERT: dropout attention) through the
    wrapper: with 'fp32' the forward and the backward matmuls all go through the mode; either way the
    gradients are the fp32 step's to bf16 precision (cosine 0.998 and 0.999 on these sizes)."""
    _Recording.counts = {}
    monkeypatch.setattr(autocast_wrapper, 'Bf16GemmAsFp32', _Recording)
    grads = _step_gradients(choice)
    if choice == 'fp32':
        assert _Recording.counts['forward'] >= 10 and _Recording.counts['backward'] >= 10, _Recording.counts
    else:
        assert _Recording.counts == {}
    cos = F.cosine_similarity(grads, _step_gradients(None), dim=0)
    assert cos > 0.995, cos
