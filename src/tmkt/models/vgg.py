"""Plain conv-BN-LIF stacks with average pooling: VGG-SNN (SPEC §7, He et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from tmkt.models.base import SpikingNet, scaled
from tmkt.snn.layers import ConvBNLIF, SeqAvgPool2x2
from tmkt.snn.neuron import LIFConfig

POOL = "P"
VGG_SNN_CFG: tuple[int | str, ...] = (64, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL)


class PlainSNN(SpikingNet):
    """conv3x3-BN-LIF blocks and 2x2 average pools from a spec like (64, 'P', 128, 'P').
    feat_pool = flattened spikes after the last layer (He's classifier input); feat_cka = the
    membrane of the last conv block's LIF."""

    def __init__(
        self,
        spec: Sequence[int | str],
        num_classes: int,
        in_shape: tuple[int, int, int],
        width: float,
        neuron: LIFConfig,
        bn_mode: str,
    ) -> None:
        super().__init__(num_classes, in_shape, neuron, bn_mode)
        c, h, w = in_shape
        layers: list[nn.Module] = []
        last_conv = -1
        cka_dim = 0
        for item in spec:
            if item == POOL:
                if h < 2 or w < 2:
                    raise ValueError(f"input {in_shape} is too small for {type(self).__name__}")
                layers.append(SeqAvgPool2x2())
                h, w = h // 2, w // 2
            else:
                out = scaled(int(item), width)
                layers.append(ConvBNLIF(c, out, neuron=neuron, bn_mode=bn_mode))
                c = out
                last_conv = len(layers) - 1
                cka_dim = c * h * w
        if last_conv < 0:
            raise ValueError("PlainSNN spec holds no conv layer")
        self.layers = nn.ModuleList(layers)
        self.last_conv = last_conv
        self.build_heads(c * h * w, cka_dim)

    def trunk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mem = x
        for i, layer in enumerate(self.layers):
            if i == self.last_conv:
                x, mem = layer.forward_with_v(x)
            else:
                x = layer(x)
        return x.flatten(2), mem


def vgg_snn(**kw: Any) -> PlainSNN:
    """VGG-SNN: 64,128 | P | 256,256 | P | 512,512 | P | 512,512 | P (He et al., TET)."""
    return PlainSNN(VGG_SNN_CFG, **kw)
