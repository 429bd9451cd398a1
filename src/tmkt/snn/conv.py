"""Convolution algorithm on the CPU: torch's default (oneDNN) or NNPACK's Winograd transform.

Where oneDNN runs its AVX2 kernels (measured on the 2-core AMD EPYC development machine), the
Winograd convolution that NNPACK ships inside torch is 1.1-3.6x faster in the forward pass and
1.14-1.58x over forward and both gradients for the 3x3 convolutions `auto` picks, and slower
for few channels or small frames (`bench/probes.py convalgo`, docs/benchmarks.md). The input
gradient of a stride-1 convolution is itself a convolution (of the output gradient with the
kernel flipped and transposed), so it runs there too; the weight gradient stays with torch.
Winograd rounds differently: about 1e-5 relative error against float64 where oneDNN gives
about 1e-6 (tested), well inside the 1e-3 of the TF32 convolutions cuDNN runs by default on
GPUs.

conv_algo: "auto" [ours, default]: Winograd on the CPU for 3x3, stride 1, undilated, ungrouped
float32 convolutions with in_channels * out_channels >= AUTO_MIN_CHANNEL_PRODUCT whose output
frames fill its tiles well (AUTO_MIN_TILE_FILL) when this torch has NNPACK, torch's default
otherwise; "winograd": the same without the channel rule (an error
if NNPACK is missing); "default": always torch's own choice (oneDNN on CPU, cuDNN on CUDA).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

CONV_ALGOS = ("auto", "default", "winograd")
AUTO_MIN_CHANNEL_PRODUCT = 128 * 128
"""`auto` uses Winograd from this in_channels * out_channels on (forward + both gradients,
`bench/probes.py convalgo`: 128 -> 128 1.14-1.29x and wider layers 1.26-1.58x faster; 64 -> 128
1.02-1.07x, 64 -> 64 and 32 -> 64 slower; docs/benchmarks.md)."""
AUTO_MIN_TILE_FILL = 0.75
"""... and where the output frame fills at least this share of the 6x6 output tiles the
Winograd transform works in (8x8 frames fill 64/144 of theirs and ran 0.78-0.96x)."""

_nnpack = torch._nnpack_spatial_convolution


@functools.cache
def nnpack_available() -> bool:
    """Whether this torch build has NNPACK (the call also initialises it, which its
    convolution needs before the first use)."""
    return bool(torch._nnpack_available())


def winograd_applies(conv: nn.Module, x: Tensor, algo: str) -> bool:
    """Whether `conv` runs on `x` (its [N, C, H, W] input) through NNPACK's Winograd under
    `algo`: CPU float32 outside autocast and torch.compile, a zero-padded 3x3 nn.Conv2d, stride
    1, no dilation, one group, padding <= 2; with "auto" also the channel and tile rules and
    NNPACK present."""
    if algo == "default" or type(conv) is not nn.Conv2d:
        return False
    if torch.compiler.is_compiling():  # NNPACK has no fake-tensor kernel: let torch.compile
        return False  # trace torch's own convolution
    ok = (
        x.device.type == "cpu" and x.dtype == torch.float32
        and conv.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
        and tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1)
        and tuple(conv.dilation) == (1, 1) and conv.groups == 1
        and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
        and all(0 <= p <= 2 for p in conv.padding)
    )
    if not ok:
        return False
    if algo == "winograd":
        if not nnpack_available():
            raise RuntimeError(
                "conv_algo 'winograd' needs NNPACK, which this torch build lacks; use 'auto' "
                "or 'default'"
            )
        return True
    if algo != "auto":
        raise ValueError(f"conv_algo must be one of {CONV_ALGOS}, got {algo!r}")
    wide = conv.in_channels * conv.out_channels >= AUTO_MIN_CHANNEL_PRODUCT
    h, w = (size + 2 * p - 2 for size, p in zip(x.shape[-2:], conv.padding, strict=True))
    return wide and tile_fill(h, w) >= AUTO_MIN_TILE_FILL and nnpack_available()


def tile_fill(h: int, w: int) -> float:
    """The share of the 6x6 output tiles of a Winograd F(6x6, 3x3) that an h x w output fills."""
    if h < 1 or w < 1:
        return 0.0
    return h * w / (36.0 * math.ceil(h / 6) * math.ceil(w / 6))


def winograd_conv2d(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """`conv(x)` for x [N, C, H, W] with NNPACK's Winograd forward and input gradient (the
    caller checked `winograd_applies`); the weight and bias gradients come from torch."""
    return _Winograd.apply(x.contiguous(), conv.weight, conv.bias, list(conv.padding))


class _Winograd(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: list[int]
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return _nnpack(x, weight.contiguous(), bias, padding, [1, 1])

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g = g.contiguous()
        g_x = g_w = g_b = None
        if need_x:  # the transposed convolution of a stride-1 conv: flip, swap in/out, re-pad
            w_t = weight.flip(2, 3).transpose(0, 1).contiguous()
            g_x = _nnpack(g, w_t, None, [2 - p for p in ctx.padding], [1, 1])
        need_b = need_b and ctx.has_bias
        if need_w or need_b:
            _, g_w, g_b = torch.ops.aten.convolution_backward(
                g, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1],
                ctx.padding, [1, 1], False, [0, 0], 1, [False, need_w, need_b],
            )
        return g_x, g_w, g_b, None
