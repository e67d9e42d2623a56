"""A patch-embedding convolution (stride = kernel, no padding) as one matrix product.

ViT stems cut the image into non-overlapping patches and project each one: ``conv2d`` with
``stride == kernel_size``. On CPU, PyTorch runs that through the general convolution kernels, whose
backward costs several times the forward (the demo's 16-pixel patches of 64-pixel images: about a
fifth of the image tower's step). Laid out as ``[N * patches, C * k * k] @ weight.T`` it is one
GEMM each way, with the same sums in another order (float rounding only).
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, Sequence) else (value, value)


def fits(input: torch.Tensor, weight: torch.Tensor, stride, padding, dilation, groups) -> bool:
    """Whether this conv2d is a patch embedding: 4-D input, stride = kernel, no padding or dilation, one
    group, a size that the kernel divides."""
    if input.dim() != 4 or weight.dim() != 4 or groups != 1 or isinstance(padding, str):
        return False
    kernel = tuple(weight.shape[2:])
    return (_pair(stride) == kernel and _pair(padding) == (0, 0) and _pair(dilation) == (1, 1)
            and input.shape[2] % kernel[0] == 0 and input.shape[3] % kernel[1] == 0)


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.conv2d(input, weight, bias, stride=kernel)`` for a :func:`fits` call, as one ``F.linear``."""
    n, c, h, w = input.shape
    out_channels, _, kh, kw = weight.shape
    gh, gw = h // kh, w // kw
    patches = input.reshape(n, c, gh, kh, gw, kw).permute(0, 2, 4, 1, 3, 5).reshape(n * gh * gw, c * kh * kw)
    out = F.linear(patches, weight.reshape(out_channels, c * kh * kw), bias)
    return out.view(n, gh, gw, out_channels).permute(0, 3, 1, 2)
