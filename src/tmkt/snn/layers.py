"""Multi-step wrappers: run stateless layers (conv, BN, pooling, linear) over [T, B, ...]."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tmkt import allocator
from tmkt.snn import stream_bn
from tmkt.snn.conv import CONV_ALGOS, winograd_applies, winograd_conv2d
from tmkt.snn.neuron import CONV_TIME_MODES, LIF, LIFConfig

BN_MODES = ("fold", "per_step")
# conv_time="auto": per-time-step convolution on CPU when output frames have at least this many
# pixels (24x24); each chunk holds whole time steps and at least STEP_MIN_FRAMES frames
STEP_MIN_PIXELS = 24 * 24
STEP_MIN_FRAMES = 16


def _check_seq(x: Tensor, where: str) -> None:
    if x.dim() < 3:
        raise ValueError(f"{where} expects a [T, B, ...] sequence, got shape {tuple(x.shape)}")


class SeqToANN(nn.Sequential):
    """Apply stateless modules to x[T, B, ...] by folding time into the batch ([T*B, ...]).

    conv_time (only for a lone nn.Conv2d): 'fold' [default] one convolution over the T*B batch;
    'step' one convolution per chunk of whole time steps (>= STEP_MIN_FRAMES frames each);
    'auto' 'step' on CPU when the output frames have >= STEP_MIN_PIXELS pixels and the host
    allocator is the C library's (not `tmkt.allocator`'s cache), else 'fold'. Same outputs; the
    weight gradient is summed over chunks (rounding-level differences). With glibc's default
    allocator every fresh T*B-sized activation is faulted in and oneDNN's layout reorders of them
    leave the caches, so per-step chunks run faster; with the caching allocator folding is faster
    (measured: docs/benchmarks.md, Backbones)."""

    def __init__(
        self, *mods: nn.Module, conv_time: str = "fold", conv_algo: str = "default"
    ) -> None:
        if conv_time not in CONV_TIME_MODES:
            raise ValueError(f"conv_time must be one of {CONV_TIME_MODES}, got {conv_time!r}")
        if conv_algo not in CONV_ALGOS:
            raise ValueError(f"conv_algo must be one of {CONV_ALGOS}, got {conv_algo!r}")
        super().__init__(*mods)
        self.conv_time = conv_time
        self.conv_algo = conv_algo

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        _check_seq(x, type(self).__name__)
        T, B = x.shape[:2]
        if len(self) == 1 and x.dim() == 5 and winograd_applies(
            self[0], x, getattr(self, "conv_algo", "default")
        ):  # NNPACK's Winograd over the folded T*B batch (tmkt.snn.conv)
            return winograd_conv2d(x.flatten(0, 1), self[0]).unflatten(0, (T, B))
        steps = self._steps_per_chunk(x)
        if steps:
            conv = self[0]
            return _ConvSteps.apply(x.contiguous(), conv.weight, conv.bias, conv, steps)
        y = super().forward(x.flatten(0, 1))
        return y.unflatten(0, (T, B))

    def _steps_per_chunk(self, x: Tensor) -> int:
        """Time steps per convolution call, or 0 to fold all of T into one call."""
        mode = getattr(self, "conv_time", "fold")
        if mode == "fold" or len(self) != 1 or x.dim() != 5:
            return 0
        conv = self[0]
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(
            conv.padding, str
        ) or torch.is_autocast_enabled(x.device.type):
            return 0
        T, B = x.shape[:2]
        steps = min(T, -(-STEP_MIN_FRAMES // max(B, 1)))
        if steps >= T:
            return 0
        if mode == "step":
            return steps
        pixels = 1
        for size, k, s, p, d in zip(
            x.shape[-2:], conv.kernel_size, conv.stride, conv.padding, conv.dilation, strict=True
        ):
            pixels *= (size + 2 * p - d * (k - 1) - 1) // s + 1
        big = x.device.type == "cpu" and pixels >= STEP_MIN_PIXELS
        return steps if big and not allocator.caching() else 0

    def extra_repr(self) -> str:
        mode = getattr(self, "conv_time", "fold")
        algo = getattr(self, "conv_algo", "default")
        parts = ([] if mode == "fold" else [f"conv_time={mode}"]) + (
            [] if algo == "default" else [f"conv_algo={algo}"]
        )
        return ", ".join(parts)


class _ConvSteps(torch.autograd.Function):
    """Conv2d over x[T, B, C, H, W], `steps` time steps per call; backward likewise (the input
    gradient is written chunk by chunk, the weight and bias gradients summed over chunks)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, weight: Tensor, bias: Tensor | None, conv: nn.Conv2d, steps: int
    ) -> Tensor:
        T, B = x.shape[:2]
        geo = (list(conv.stride), list(conv.padding), list(conv.dilation), conv.groups)
        out: Tensor | None = None
        for t0 in range(0, T, steps):
            t1 = min(T, t0 + steps)
            y = F.conv2d(x[t0:t1].flatten(0, 1), weight, bias, *geo)
            if out is None:
                out = y.new_empty((T, B, *y.shape[1:]))
            out[t0:t1].copy_(y.unflatten(0, (t1 - t0, B)))
        ctx.save_for_backward(x, weight)
        ctx.meta = (geo, steps, None if bias is None else list(bias.shape))
        assert out is not None
        return out

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        (stride, padding, dilation, groups), steps, bias_sizes = ctx.meta
        need = [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                bias_sizes is not None and ctx.needs_input_grad[2]]
        g = g.contiguous()
        T, B = x.shape[:2]
        g_x = torch.empty_like(x) if need[0] else None
        g_w: Tensor | None = None
        g_b: Tensor | None = None
        for t0 in range(0, T, steps):
            t1 = min(T, t0 + steps)
            gx, gw, gb = torch.ops.aten.convolution_backward(
                g[t0:t1].flatten(0, 1), x[t0:t1].flatten(0, 1), weight, bias_sizes, stride,
                padding, dilation, False, [0] * len(stride), groups, need,
            )
            if g_x is not None:
                g_x[t0:t1].copy_(gx.unflatten(0, (t1 - t0, B)))
            if need[1]:
                g_w = gw if g_w is None else g_w.add_(gw)
            if need[2]:
                g_b = gb if g_b is None else g_b.add_(gb)
        return g_x, g_w, g_b, None, None


class SeqAvgPool2x2(nn.Module):
    """2x2 average pooling, stride 2, floor (= `SeqToANN(nn.AvgPool2d(2))`) over x[T, B, C, H, W].

    On CPU it adds four strided views in aten's order and writes the gradient with four strided
    copies: bit-identical to `F.avg_pool2d`, ~2-3x faster than its CPU kernels on spike maps
    (docs/benchmarks.md); elsewhere (cuDNN), and under torch.compile, it calls `F.avg_pool2d`
    (dynamo on torch 2.11 traced the custom backward into wrong gradients; tested)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f"SeqAvgPool2x2 expects [T, B, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[-2] < 2 or x.shape[-1] < 2:
            raise ValueError(f"2x2 pooling needs frames of at least 2x2, got {tuple(x.shape)}")
        if (x.device.type != "cpu" or not x.is_floating_point()
                or torch.compiler.is_compiling()):
            return F.avg_pool2d(x.flatten(0, 1), 2).unflatten(0, x.shape[:2])
        return _AvgPool2x2.apply(x)


class _AvgPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        y = x[..., 0:h:2, 0:w:2] + x[..., 0:h:2, 1:w:2]  # aten's order: (0,0), (0,1), (1,0), (1,1)
        y += x[..., 1:h:2, 0:w:2]
        y += x[..., 1:h:2, 1:w:2]
        ctx.in_shape = x.shape
        return y.mul_(0.25)  # = / 4, exactly

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        shape = ctx.in_shape
        h, w = shape[-2] // 2 * 2, shape[-1] // 2 * 2
        odd = (h, w) != tuple(shape[-2:])
        gx = g.new_zeros(shape) if odd else g.new_empty(shape)
        q = g * 0.25
        for i in (0, 1):
            for j in (0, 1):
                gx[..., i:h:2, j:w:2] = q
        return gx


class SeqBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over x[T, B, C, H, W]. mode 'fold' [ours, default]: statistics over T*B
    (tdBN/TET/spikingjelly style); 'per_step': one shared BN called per time step (He et al.'s
    step loop: per-step batch statistics, running stats updated T times)."""

    def __init__(self, num_features: int, mode: str = "fold", **kw: Any) -> None:
        if mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {mode!r}")
        super().__init__(num_features, **kw)
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if x.dim() != 5:
            raise ValueError(f"SeqBatchNorm2d expects [T, B, C, H, W], got shape {tuple(x.shape)}")
        if stream_bn.bn_groups() > 1:
            return self._per_stream(x)
        if self.mode == "fold":
            return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return torch.stack([super(SeqBatchNorm2d, self).forward(xt) for xt in x])

    def _per_stream(self, x: Tensor) -> Tensor:
        """BN with separate statistics per interleaved stream (see stream_bn); the running
        statistics are updated as separate passes would, stream after stream."""
        g = stream_bn.bn_groups()
        weight = stream_bn.repeat_affine(self.weight, g)
        bias = stream_bn.repeat_affine(self.bias, g)
        stats = []

        def bn2d(x4: Tensor) -> Tensor:
            self._check_input_dim(x4)
            training, rm, rv, momentum = stream_bn.running_args(self, g)
            y = F.batch_norm(stream_bn.grouped_view(x4, g), rm, rv, weight, bias, training,
                             momentum, self.eps)
            stats.append((rm, rv))
            return y.view_as(x4)

        if self.mode == "fold":
            y = bn2d(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        else:
            y = torch.stack([bn2d(xt) for xt in x])
        stream_bn.update_running(self, stats, g)
        return y

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode}"


class SeqFlatten(nn.Module):
    """[T, B, ...] -> [T, B, D]."""

    def forward(self, x: Tensor) -> Tensor:
        _check_seq(x, "SeqFlatten")
        return x.flatten(2)


class ConvBNLIF(nn.Module):
    """conv3x3 (no bias) -> BN -> LIF over [T, B, C, H, W]; the VGG-SNN / CNN building block."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        neuron: LIFConfig | None = None,
        bn_mode: str = "fold",
    ) -> None:
        super().__init__()
        self.lif = LIF(neuron)
        self.conv = SeqToANN(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=False),
            conv_time=self.lif.cfg.conv_time,
            conv_algo=self.lif.cfg.conv_algo,
        )
        self.bn = SeqBatchNorm2d(out_ch, mode=bn_mode)

    def forward(self, x: Tensor) -> Tensor:
        return bn_lif(self.bn, self.lif, self.conv(x))[0]

    def forward_with_v(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(spikes, post-reset membrane of the LIF)."""
        return bn_lif(self.bn, self.lif, self.conv(x), want_v=True)


def bn_lif(bn: SeqBatchNorm2d, lif: LIF, y: Tensor, want_v: bool = False) -> tuple[Tensor, Tensor]:
    """lif(bn(y)) for y [T, B, C, H, W] -> (spikes, post-reset membrane, or empty if not want_v).
    Fused (keeps only y for backward) when BN folds T*B and the LIF is multi-step."""
    from tmkt.snn.fused import fused_bn_lif

    if bn.mode == "fold" and lif.step_mode == "m" and y.dim() == 5:
        return fused_bn_lif(bn, lif, y, want_v)
    if want_v:
        return lif.forward_with_v(bn(y))
    return lif(bn(y)), y.new_empty(0)
