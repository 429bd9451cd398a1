"""Fused BatchNorm (statistics over T*B) + multi-step LIF, saving only the BN input for backward.

Unfused, BN keeps its input and the LIF keeps its membrane sequence: two full-size tensors per
block. Here backward recomputes the BN output and the membrane from the BN input (cheap
elementwise work), so a conv-BN-LIF block keeps one. Results equal SeqBatchNorm2d then LIF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from tmkt.snn.neuron import LIF, LIFConfig, lif_backward_inplace, lif_forward_inplace
from tmkt.snn.surrogate import Surrogate, build_surrogate

if TYPE_CHECKING:
    from tmkt.snn.layers import SeqBatchNorm2d

_bn = torch.ops.aten.native_batch_norm
_bn_backward = torch.ops.aten.native_batch_norm_backward


class _BNLIF(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, y: Tensor, weight: Tensor | None, bias: Tensor | None, bn: SeqBatchNorm2d,
        cfg: LIFConfig, sg: Surrogate, want_v: bool,
    ) -> tuple[Tensor, Tensor]:
        training = bn.training or bn.running_mean is None
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                momentum = 1.0 / float(bn.num_batches_tracked)
        use_running = not bn.training or bn.track_running_stats
        rm = bn.running_mean if use_running else None
        rv = bn.running_var if use_running else None
        yf = y.flatten(0, 1)
        x, mean, invstd = _bn(yf, weight, bias, rm, rv, training, momentum, bn.eps)
        buf = x.view_as(y)
        spikes = torch.empty_like(y)
        v_seq = torch.empty_like(y) if want_v else y.new_empty(0)
        hard = cfg.reset == "hard"
        lif_forward_inplace(buf, float(cfg.tau), float(cfg.v_threshold), hard, spikes,
                             v_seq if want_v else None)
        # eval mode reads running stats in backward: keep copies (they change in place later)
        stats = (rm.clone(), rv.clone()) if not training and rm is not None else (None, None)
        ctx.save_for_backward(y, weight, bias, mean, invstd)
        ctx.stats = stats
        ctx.meta = (training, bn.eps, cfg, sg, want_v)
        return spikes, v_seq

    @staticmethod
    def backward(ctx, g_s: Tensor, g_v: Tensor):  # type: ignore[override]
        y, weight, bias, mean, invstd = ctx.saved_tensors
        training, eps, cfg, sg, want_v = ctx.meta
        rm, rv = ctx.stats
        yf = y.flatten(0, 1)
        if training:
            x = _bn(yf, weight, bias, None, None, True, 0.0, eps)[0]
        else:
            x = _bn(yf, weight, bias, rm, rv, False, 0.0, eps)[0]
        buf = x.view_as(y)
        tau, vth, hard = float(cfg.tau), float(cfg.v_threshold), cfg.reset == "hard"
        lif_forward_inplace(buf, tau, vth, hard, None, None)  # buf = h
        lif_backward_inplace(buf, g_s, g_v if want_v else None, tau, vth, hard,
                              cfg.detach_reset, sg)  # buf = dL/dx
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                bias is not None and ctx.needs_input_grad[2]]
        g_x = x  # buf is a view of x: it now holds dL/dx
        g_y, g_w, g_b = _bn_backward(g_x, yf, weight, rm, rv, mean, invstd, training, eps, mask)
        g_y = g_y.view_as(y) if g_y is not None else None
        return g_y, g_w, g_b, None, None, None, None


def fused_bn_lif(
    bn: SeqBatchNorm2d, lif: LIF, y: Tensor, want_v: bool = False
) -> tuple[Tensor, Tensor]:
    """lif(bn(y)) in one autograd node, for a 'fold' BN and a multi-step LIF (see layers.bn_lif)."""
    if not y.is_floating_point():
        raise ValueError(f"BN-LIF expects a floating tensor, got {y.dtype}")
    sg = build_surrogate(lif.cfg.surrogate, lif.cfg.alpha)
    s, v = _BNLIF.apply(y.contiguous(), bn.weight, bn.bias, bn, lif.cfg, sg, want_v)
    if lif.monitor is not None:
        lif.monitor.record(lif, s)
    return s, v
