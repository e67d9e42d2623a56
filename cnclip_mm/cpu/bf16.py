"""bf16 matrix products on CPUs without bf16 matrix instructions, at fp32 matmul speed.

PyTorch sends a CPU bf16 matmul to oneDNN only where the CPU has AVX-512 (BF16) / AMX or ARM bf16;
elsewhere (AVX2 machines) it runs a fallback loop: on 2 AVX2 cores a ``[1576, 768] x [768, 3072]``
product takes 368 ms in bf16 against 47 ms in fp32, and the backward's transposed products are
slower still, so a bf16-autocast ViT-B/16 train step took minutes instead of seconds.

:class:`Bf16GemmAsFp32` is a dispatch mode, below autocast and autograd: when a matrix op (``mm``,
``addmm``, ``bmm``, ``baddbmm``, ``mv``, ``addmv``, ``dot``, convolution, the CPU flash-attention
kernels; forward and backward) receives bf16 tensors, it runs the op's fp32 kernel on the same
values and rounds the results to bf16. bf16 numbers are exact in fp32 and so is the product of two
of them, so this is the bf16 product with fp32 accumulation that native bf16 kernels compute, up to
summation order (flash attention also keeps its probabilities in fp32 for the second product).
Autocast's casts, the bf16 activations autograd saves and every other op are untouched.
"""
from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

__all__ = ['BF16_GEMM_CHOICES', 'Bf16GemmAsFp32', 'bf16_autocast', 'bf16_gemm_context', 'cpu_has_native_bf16_gemm',
           'uses_fp32_gemm']

BF16_GEMM_CHOICES = ('auto', 'native', 'fp32')

_aten = torch.ops.aten
# op -> indices of outputs that stay fp32 (as the native bf16 kernel returns them).
_MATRIX_OPS = {
    _aten.mm.default: (),
    _aten.addmm.default: (),
    _aten.bmm.default: (),
    _aten.baddbmm.default: (),
    _aten.mv.default: (),
    _aten.addmv.default: (),
    _aten.dot.default: (),
    _aten.convolution.default: (),
    _aten.convolution_backward.default: (),
    _aten._scaled_dot_product_flash_attention_for_cpu.default: (1,),  # logsumexp
    _aten._scaled_dot_product_flash_attention_for_cpu_backward.default: (),
}


def cpu_has_native_bf16_gemm() -> bool:
    """Whether this CPU runs bf16 matmuls through oneDNN (AVX-512 BF16 / AMX, ARM bf16)."""
    check = getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', None)
    return True if check is None else bool(check())


def _is_cpu_bf16(x) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16 and x.device.type == 'cpu'


class Bf16GemmAsFp32(TorchDispatchMode):
    """Run CPU bf16 matrix ops as fp32 kernels on bf16 values (see the module docstring)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        keep_fp32 = _MATRIX_OPS.get(func)
        if keep_fp32 is None or not any(_is_cpu_bf16(a) for a in (*args, *kwargs.values())):
            return func(*args, **kwargs)
        up = tree_map(lambda x: x.float() if _is_cpu_bf16(x) else x, (args, kwargs))
        out = func(*up[0], **up[1])
        if isinstance(out, torch.Tensor):
            return out.to(torch.bfloat16)
        return type(out)(o if o is None or i in keep_fp32 else o.to(torch.bfloat16) for i, o in enumerate(out))


def uses_fp32_gemm(choice: str = 'auto', device_type: str = 'cpu') -> bool:
    """Whether bf16 matrix ops on ``device_type`` go through :class:`Bf16GemmAsFp32`.

    Args:
        choice: ``'auto'``: on a CPU without native bf16 matmuls; ``'fp32'``: on any CPU;
            ``'native'``: never (PyTorch's own kernels).
        device_type: where the model runs; accelerators always use their native kernels.
    """
    if choice not in BF16_GEMM_CHOICES:
        raise ValueError(f'bf16_gemm must be one of {BF16_GEMM_CHOICES}, got {choice!r}')
    return device_type == 'cpu' and (choice == 'fp32' or (choice == 'auto' and not cpu_has_native_bf16_gemm()))


def bf16_gemm_context(choice: str = 'auto', device_type: str = 'cpu'):
    """:class:`Bf16GemmAsFp32` where :func:`uses_fp32_gemm` says so, else a no-op context."""
    return Bf16GemmAsFp32() if uses_fp32_gemm(choice, device_type) else nullcontext()


@contextmanager
def bf16_autocast(device_type: str, enabled: bool = True, bf16_gemm: str = 'auto') -> Iterator[None]:
    """``torch.autocast(device_type, bfloat16)`` plus :func:`bf16_gemm_context` (when enabled)."""
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled), \
            (bf16_gemm_context(bf16_gemm, device_type) if enabled else nullcontext()):
        yield
