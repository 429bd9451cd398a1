"""Spiking ResNets: pre-activation ResNet-18 (3x3 stem, no max-pool) and ResNet-19 (TET/tdBN)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from tmkt.models.base import SpikingNet, scaled
from tmkt.snn.layers import SeqBatchNorm2d, SeqToANN, bn_lif
from tmkt.snn.neuron import LIF, LIFConfig


def conv(
    in_ch: int, out_ch: int, k: int = 3, stride: int = 1, neuron: LIFConfig | None = None
) -> SeqToANN:
    """A multi-step conv kxk without bias (BN follows or precedes it); the neuron config's
    conv_algo picks its CPU algorithm (tmkt.snn.conv)."""
    algo = "default" if neuron is None else neuron.conv_algo
    return SeqToANN(nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=False), conv_algo=algo)


def _out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # 3x3 pad 1 and 1x1 pad 0 give the same size


class PreActBlock(nn.Module):
    """BN-LIF-conv3x3-BN-LIF-conv3x3 + shortcut (identity, or 1x1 conv of the first activation)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, neuron: LIFConfig, bn_mode: str):
        super().__init__()
        self.bn1 = SeqBatchNorm2d(in_ch, mode=bn_mode)
        self.lif1 = LIF(neuron)
        self.conv1 = conv(in_ch, out_ch, 3, stride, neuron)
        self.bn2 = SeqBatchNorm2d(out_ch, mode=bn_mode)
        self.lif2 = LIF(neuron)
        self.conv2 = conv(out_ch, out_ch, 3, 1, neuron)
        self.shortcut = (
            conv(in_ch, out_ch, 1, stride, neuron) if stride != 1 or in_ch != out_ch else None
        )

    def forward(self, x: Tensor) -> Tensor:
        a = bn_lif(self.bn1, self.lif1, x)[0]
        sc = x if self.shortcut is None else self.shortcut(a)
        return self.conv2(bn_lif(self.bn2, self.lif2, self.conv1(a))[0]) + sc


class BasicBlock(nn.Module):
    """conv-BN-LIF-conv-BN (+ shortcut: identity or conv1x1-BN) -> LIF (TET's ResNet-19 block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, neuron: LIFConfig, bn_mode: str):
        super().__init__()
        self.conv1 = conv(in_ch, out_ch, 3, stride, neuron)
        self.bn1 = SeqBatchNorm2d(out_ch, mode=bn_mode)
        self.lif1 = LIF(neuron)
        self.conv2 = conv(out_ch, out_ch, 3, 1, neuron)
        self.bn2 = SeqBatchNorm2d(out_ch, mode=bn_mode)
        self.down: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.down = nn.Sequential(
                conv(in_ch, out_ch, 1, stride, neuron), SeqBatchNorm2d(out_ch, mode=bn_mode)
            )
        self.lif2 = LIF(neuron)

    def _pre(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(bn_lif(self.bn1, self.lif1, self.conv1(x))[0]))
        return y + (x if self.down is None else self.down(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.lif2(self._pre(x))

    def forward_with_v(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(spikes, post-reset membrane of the output LIF)."""
        return self.lif2.forward_with_v(self._pre(x))


def _pool(x: Tensor) -> Tensor:
    """Global average over H, W of [T, B, C, H, W] -> [T, B, C]."""
    return x.mean(dim=(3, 4))


class SpikingResNet18(SpikingNet):
    """Pre-activation spiking ResNet-18: conv3x3 stem (no max-pool), 4 stages of 2 blocks
    (64,128,256,512; strides 1,2,2,2), final BN-LIF, global average pool (F = 512 x width)."""

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, int, int],
        width: float,
        neuron: LIFConfig,
        bn_mode: str,
    ) -> None:
        super().__init__(num_classes, in_shape, neuron, bn_mode)
        c, h, w = in_shape
        ch = scaled(64, width)
        self.stem = conv(c, ch, 3, 1, neuron)
        blocks: list[nn.Module] = []
        for i, (n, base) in enumerate(zip((2, 2, 2, 2), (64, 128, 256, 512), strict=True)):
            out = scaled(base, width)
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(PreActBlock(ch, out, stride, neuron, bn_mode))
                h, w, ch = _out(h, stride), _out(w, stride), out
        self.blocks = nn.Sequential(*blocks)
        self.bn_final = SeqBatchNorm2d(ch, mode=bn_mode)
        self.lif_final = LIF(neuron)
        self.build_heads(ch, ch * h * w)

    def trunk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, v = bn_lif(self.bn_final, self.lif_final, self.blocks(self.stem(x)), want_v=True)
        return _pool(s), v


class SpikingResNet19(SpikingNet):
    """ResNet-19 of TET / tdBN: conv3x3(128)-BN-LIF stem, stages of 3,3,2 BasicBlocks with
    widths 128,256,512 (strides 1,2,2), global average pool (F = 512 x width). The heads are
    single linear layers (TET's extra 256-unit spiking FC is left out)."""

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, int, int],
        width: float,
        neuron: LIFConfig,
        bn_mode: str,
    ) -> None:
        super().__init__(num_classes, in_shape, neuron, bn_mode)
        c, h, w = in_shape
        ch = scaled(128, width)
        self.stem = conv(c, ch, 3, 1, neuron)
        self.stem_bn = SeqBatchNorm2d(ch, mode=bn_mode)
        self.stem_lif = LIF(neuron)
        blocks: list[nn.Module] = []
        for i, (n, base) in enumerate(zip((3, 3, 2), (128, 256, 512), strict=True)):
            out = scaled(base, width)
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(ch, out, stride, neuron, bn_mode))
                h, w, ch = _out(h, stride), _out(w, stride), out
        self.blocks = nn.ModuleList(blocks)
        self.build_heads(ch, ch * h * w)

    def trunk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = bn_lif(self.stem_bn, self.stem_lif, self.stem(x))[0]
        for blk in self.blocks[:-1]:
            x = blk(x)
        s, v = self.blocks[-1].forward_with_v(x)
        return _pool(s), v


def resnet18(**kw: Any) -> SpikingResNet18:
    """Spiking pre-activation ResNet-18."""
    return SpikingResNet18(**kw)


def resnet19(**kw: Any) -> SpikingResNet19:
    """Spiking ResNet-19 (TET)."""
    return SpikingResNet19(**kw)
