"""Fused BatchNorm (statistics over T*B) + multi-step LIF in one autograd node.

Unfused, BN keeps its input and the LIF keeps its membrane sequence, and backward allocates
fresh buffers for both gradients. Here, with LIFConfig.bn_lif_saves:
- 'membrane' [default]: the node keeps the BN input and the pre-spike membrane h (the BN output
  buffer, overwritten in place) plus the batch statistics; backward turns h into dL/dx in place.
- 'input': it keeps only the BN input; backward recomputes the BN output and the membrane
  (one full-size tensor less per block, for the cost of a BN pass and the LIF loop).
Results equal SeqBatchNorm2d then LIF in both modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from tmkt.snn import stream_bn
from tmkt.snn.neuron import LIF, LIFConfig, lif_backward_inplace, lif_forward_inplace
from tmkt.snn.surrogate import Surrogate, build_surrogate

if TYPE_CHECKING:
    from tmkt.snn.layers import SeqBatchNorm2d

# The entry points F.batch_norm uses (cuDNN on CUDA, native on CPU): same numerics as nn.BatchNorm2d
_bn = torch.ops.aten._batch_norm_impl_index
_bn_backward = torch.ops.aten._batch_norm_impl_index_backward


class _BNLIF(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, y: Tensor, weight: Tensor | None, bias: Tensor | None, bn: SeqBatchNorm2d,
        cfg: LIFConfig, sg: Surrogate, want_v: bool, groups: int,
    ) -> tuple[Tensor, Tensor]:
        if groups == 1:
            training = bn.training or bn.running_mean is None
            momentum = 0.0 if bn.momentum is None else bn.momentum
            if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
                if bn.momentum is None:
                    momentum = 1.0 / float(bn.num_batches_tracked)
            use_running = not bn.training or bn.track_running_stats
            rm = bn.running_mean if use_running else None
            rv = bn.running_var if use_running else None
        else:  # interleaved streams, statistics per stream (weight and bias come repeated)
            training, rm, rv, momentum = stream_bn.running_args(bn, groups)
        yf = _bn_view(y, groups)
        cudnn = torch.backends.cudnn.enabled
        x, mean, var_t, reserve, impl = _bn(
            yf, weight, bias, rm, rv, training, momentum, bn.eps, cudnn
        )
        if groups > 1:
            stream_bn.update_running(bn, [(rm, rv)], groups)
        buf = x.view_as(y)
        spikes = torch.empty_like(y)
        v_seq = torch.empty_like(y) if want_v else y.new_empty(0)
        hard = cfg.reset == "hard"
        lif_forward_inplace(buf, float(cfg.tau), float(cfg.v_threshold), hard, spikes,
                             v_seq if want_v else None)
        # eval mode reads running stats in backward: keep copies (they change in place later)
        stats = (rm.clone(), rv.clone()) if not training and rm is not None else (None, None)
        ctx.save_for_backward(y, weight, bias)
        ctx.stats = stats
        ctx.meta = (training, bn.eps, cudnn, cfg, sg, want_v, groups)
        # 'membrane': keep h and the batch statistics; backward overwrites h with dL/dx (once: a
        # second backward through a retained graph falls back to recomputing)
        ctx.kept = (buf, mean, var_t, reserve, impl) if cfg.bn_lif_saves == "membrane" else None
        return spikes, v_seq

    @staticmethod
    def backward(ctx, g_s: Tensor, g_v: Tensor):  # type: ignore[override]
        y, weight, bias = ctx.saved_tensors
        training, eps, cudnn, cfg, sg, want_v, groups = ctx.meta
        rm, rv = ctx.stats
        yf = _bn_view(y, groups)
        tau, vth, hard = float(cfg.tau), float(cfg.v_threshold), cfg.reset == "hard"
        if ctx.kept is not None:
            buf, mean, var_t, reserve, impl = ctx.kept  # buf = h
            ctx.kept = None
        else:
            x, mean, var_t, reserve, impl = _bn(
                yf, weight, bias, rm, rv, training, 0.0, eps, cudnn
            )
            buf = x.view_as(y)
            lif_forward_inplace(buf, tau, vth, hard, None, None)  # buf = h
        lif_backward_inplace(buf, g_s, g_v if want_v else None, tau, vth, hard,
                              cfg.detach_reset, sg)  # buf = dL/dx
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                bias is not None and ctx.needs_input_grad[2]]
        g_x = buf.view_as(yf)  # buf now holds dL/dx
        g_y, g_w, g_b = _bn_backward(
            impl, yf, g_x, weight, rm, rv, mean, var_t, training, eps, mask, reserve
        )
        g_y = g_y.view_as(y) if g_y is not None else None
        return g_y, g_w, g_b, None, None, None, None, None


def _bn_view(y: Tensor, groups: int) -> Tensor:
    """[T, B, C, H, W] -> the BN call's [T*B, C, H, W], or with interleaved streams its
    [T*B / groups, groups * C, H, W] view (per-stream statistics, see stream_bn)."""
    yf = y.flatten(0, 1)
    return yf if groups == 1 else stream_bn.grouped_view(yf, groups)


@torch.compiler.disable
def fused_bn_lif(
    bn: SeqBatchNorm2d, lif: LIF, y: Tensor, want_v: bool = False
) -> tuple[Tensor, Tensor]:
    """lif(bn(y)) in one autograd node, for a 'fold' BN and a multi-step LIF (see layers.bn_lif).
    torch.compile runs it eagerly (a graph break): its in-place kernels and BN's aten entry
    points have no traceable form with dynamic shapes (dynamo failed on them)."""
    if not y.is_floating_point():
        raise ValueError(f"BN-LIF expects a floating tensor, got {y.dtype}")
    sg = build_surrogate(lif.cfg.surrogate, lif.cfg.alpha)
    g = stream_bn.bn_groups()
    weight, bias = stream_bn.repeat_affine(bn.weight, g), stream_bn.repeat_affine(bn.bias, g)
    s, v = _BNLIF.apply(y.contiguous(), weight, bias, bn, lif.cfg, sg, want_v, g)
    if lif.monitor is not None:
        lif.monitor.record(lif, s)
    return s, v
