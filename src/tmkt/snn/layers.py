"""Multi-step wrappers: run stateless layers (conv, BN, pooling, linear) over [T, B, ...]."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tmkt.snn.neuron import LIF, LIFConfig

BN_MODES = ("fold", "per_step")


def _check_seq(x: Tensor, where: str) -> None:
    if x.dim() < 3:
        raise ValueError(f"{where} expects a [T, B, ...] sequence, got shape {tuple(x.shape)}")


class SeqToANN(nn.Sequential):
    """Apply stateless modules to x[T, B, ...] by folding time into the batch ([T*B, ...])."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        _check_seq(x, type(self).__name__)
        T, B = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.unflatten(0, (T, B))


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
        if self.mode == "fold":
            return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return torch.stack([super(SeqBatchNorm2d, self).forward(xt) for xt in x])

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
        self.conv = SeqToANN(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=False)
        )
        self.bn = SeqBatchNorm2d(out_ch, mode=bn_mode)
        self.lif = LIF(neuron)

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
