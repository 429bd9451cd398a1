"""The backbone contract: SpikingNet.forward(x[T,B,C,H,W]) -> NetOutput (two heads + features)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from tmkt.models.heads import LinearHead
from tmkt.snn.neuron import LIFConfig


class NetOutput(NamedTuple):
    """Per-step outputs: logits [T,B,K] of the source and event heads, the CKA feature [T,B,D]
    (post-reset membrane of the last conv block's LIF, as He et al.), the pooled feature [T,B,F]."""

    logits_src: Tensor
    logits_evt: Tensor
    feat_cka: Tensor
    feat_pool: Tensor


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def check_in_shape(in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Validate (C, H, W)."""
    shape = tuple(in_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"in_shape must be (C, H, W) of positive ints, got {in_shape!r}")
    return shape  # type: ignore[return-value]


class SpikingNet(nn.Module):
    """Base class: subclasses build a trunk and implement `trunk(x) -> (feat_pool [T,B,F],
    membrane [T,B,...])`; this class checks the input and applies the two linear heads."""

    def __init__(
        self, num_classes: int, in_shape: tuple[int, int, int], neuron: LIFConfig, bn_mode: str
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.in_shape = check_in_shape(in_shape)
        self.neuron = neuron
        self.bn_mode = bn_mode
        self.feature_dim = 0  # F, set by build_heads
        self.cka_dim = 0  # D

    def build_heads(self, feature_dim: int, cka_dim: int) -> None:
        """Create the source and event classifier heads on the F-dim pooled feature."""
        self.feature_dim = feature_dim
        self.cka_dim = cka_dim
        self.head_src = LinearHead(feature_dim, self.num_classes)
        self.head_evt = LinearHead(feature_dim, self.num_classes)

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError naming the expected [T, B, C, H, W] and the received shape."""
        C, H, W = self.in_shape
        ok = x.dim() == 5 and tuple(x.shape[2:]) == self.in_shape and x.shape[0] > 0
        if not ok:
            raise ValueError(
                f"{type(self).__name__} expects input [T, B, {C}, {H}, {W}] (time first), "
                f"got shape {list(x.shape)}"
            )
        if x.is_complex():
            raise ValueError(f"{type(self).__name__} expects real frames, got {x.dtype}")

    def trunk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> NetOutput:
        """x [T, B, C, H, W] -> NetOutput of per-step logits and features. Integer or boolean
        frames (uint8 event counts from the frame cache, spikes) are widened to the weights'
        dtype here, on the device the network runs on."""
        self.check_input(x)
        if not x.is_floating_point():
            x = x.to(self.head_src.weight.dtype)
        feat, mem = self.trunk(x)
        return NetOutput(self.head_src(feat), self.head_evt(feat), mem.flatten(2), feat)
