"""Operation counts and the usual 45 nm energy estimate of a spiking network, per layer.

Counted while the network runs on real inputs (`with OpCounter(model) as ops: model(x)`), for
the synaptic layers of the event path: every convolution and the event head (the source head
is not used at inference). Per layer:

- dense MACs: what the layer costs computed densely, every time step (C_in k^2 per output
  value of a convolution, in x out per step of a linear layer; zero padding included, as MAC
  counters count it);
- synaptic operations (SynOps): the accumulates the input spikes trigger, exactly: each spike
  adds its weight to every output it reaches (fewer at the borders);
- MACs: the multiply-accumulates of a layer whose input is not spikes (the first layer, fed
  with event-count frames), i.e. its dense MACs.

An average pool between spikes and a layer (2x2 in `vgg_snn` / `cnn_small`, the global pool
before the ResNets' heads) is folded into the layer's weights, as a neuromorphic mapping does
(pool then conv = a strided conv with the kernel spread over the pool window, weights / area):
each input spike then triggers the accumulates of its pooled cell. So a pooled value of m
spikes / area counts m accumulates per connection.

Energy: `pj_mac` per MAC and `pj_ac` per accumulate (4.6 and 0.9 pJ: 32-bit float at 45 nm,
Horowitz, ISSCC 2014, the figures SNN papers use). The ANN figure is the same network with
every layer as MACs over one pass (one time step); the dense figure is every layer as MACs on
all T steps. Not counted: memory and data movement, neuron state updates, BN (folded into the
convolutions at inference), biases, pooling, the readout's mean over T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

PJ_MAC = 4.6
"""Energy of one 32-bit float multiply-accumulate at 45 nm, pJ (Horowitz 2014)."""
PJ_AC = 0.9
"""Energy of one 32-bit float accumulate (add) at 45 nm, pJ (Horowitz 2014)."""

FRAMES = "frames"
SPIKES = "spikes"


@dataclass
class SynapticLayer:
    """One weight layer of the event path and what feeds it."""

    name: str
    module: nn.Module
    """A `SeqToANN` holding one nn.Conv2d, or an nn.Linear (the event head)."""
    source: str
    """FRAMES (not spikes: counted as MACs) or SPIKES."""
    pool_area: int = 1
    """Pool window averaged between the spikes and this layer (1: none)."""
    # counts over everything run while counting
    dense_macs: int = 0
    synops: int = 0
    input_spikes: int = 0
    input_neurons: int = 0
    """Input neuron-steps the input spikes are a share of (the pooled-away ones left out)."""
    steps: int = 0
    """T summed over the batches: samples = steps / T."""
    samples: int = 0

    @property
    def kind(self) -> str:
        """'conv KxK' or 'linear'."""
        if isinstance(self.module, nn.Linear):
            return "linear"
        k = self.module[0].kernel_size
        return f"conv{k[0]}x{k[1]}"

    @property
    def input(self) -> str:
        """What the layer takes, in words."""
        if self.source == FRAMES:
            return "frames (MACs)"
        return SPIKES if self.pool_area == 1 else f"pooled spikes (area {self.pool_area})"


def synaptic_layers(model: nn.Module) -> list[SynapticLayer]:
    """The weight layers of a tmkt backbone's event path, in order, with their inputs.
    Another kind of network is a ValueError naming it."""
    from tmkt.models.resnet import BasicBlock, PreActBlock, SpikingResNet18, SpikingResNet19
    from tmkt.models.vgg import PlainSNN
    from tmkt.snn.layers import ConvBNLIF, SeqAvgPool2x2

    layers: list[SynapticLayer] = []
    if isinstance(model, PlainSNN):
        prev = None
        for i, m in enumerate(model.layers):
            if isinstance(m, ConvBNLIF):
                if prev is None:
                    layers.append(SynapticLayer(f"layers.{i}.conv", m.conv, FRAMES))
                else:
                    area = 4 if isinstance(prev, SeqAvgPool2x2) else 1
                    layers.append(SynapticLayer(f"layers.{i}.conv", m.conv, SPIKES, area))
            prev = m
        area = 4 if isinstance(prev, SeqAvgPool2x2) else 1
        layers.append(SynapticLayer("head_evt", model.head_evt, SPIKES, area))
        return layers
    if isinstance(model, SpikingResNet18 | SpikingResNet19):
        layers.append(SynapticLayer("stem", model.stem, FRAMES))
        for i, blk in enumerate(model.blocks):
            p = f"blocks.{i}"
            layers += [SynapticLayer(f"{p}.conv1", blk.conv1, SPIKES),
                       SynapticLayer(f"{p}.conv2", blk.conv2, SPIKES)]
            if isinstance(blk, PreActBlock) and blk.shortcut is not None:
                layers.append(SynapticLayer(f"{p}.shortcut", blk.shortcut, SPIKES))
            if isinstance(blk, BasicBlock) and blk.down is not None:
                layers.append(SynapticLayer(f"{p}.down.0", blk.down[0], SPIKES))
        area = model.cka_dim // model.feature_dim  # the final map's H x W, globally pooled
        layers.append(SynapticLayer("head_evt", model.head_evt, SPIKES, area))
        return layers
    raise ValueError(
        f"operation counting supports the tmkt backbones (vgg_snn, cnn_small, resnet18, "
        f"resnet19), not {type(model).__name__}"
    )


def _as_counts(x: Tensor, layer: SynapticLayer) -> Tensor:
    """Input spikes per input value (pooled values times the pool area), checked to be whole
    numbers in [0, area]: anything else is not spikes and the count would be wrong."""
    n = x.detach().float() * layer.pool_area if layer.pool_area != 1 else x.detach().float()
    ok = bool(((n == n.round()) & (n >= 0) & (n <= layer.pool_area)).all())
    if not ok:
        raise ValueError(
            f"{layer.name}: its input is not {layer.input} (values outside whole counts in "
            f"[0, {layer.pool_area}] / {layer.pool_area}); cannot count synaptic operations"
        )
    return n


def _count(layer: SynapticLayer, x: Tensor, y: Tensor) -> None:
    """Add the operations of one call: x [T, B, ...] in, y [T, B, ...] out."""
    T, B = x.shape[:2]
    layer.steps += T
    layer.samples += B
    mod = layer.module
    if isinstance(mod, nn.Linear):
        rows = x.numel() // mod.in_features
        layer.dense_macs += rows * mod.in_features * mod.out_features
        if layer.source == SPIKES:
            n = _as_counts(x, layer)
            spikes = int(n.sum(dtype=torch.float64))
            layer.synops += spikes * mod.out_features
            layer.input_spikes += spikes
            layer.input_neurons += x.numel() * layer.pool_area
        return
    conv: nn.Conv2d = mod[0]
    c_out, c_in_g, kh, kw = conv.weight.shape
    out_pos = y.numel() // c_out  # T * B * H_out * W_out
    layer.dense_macs += out_pos * c_out * c_in_g * kh * kw
    if layer.source != SPIKES:
        return
    n = _as_counts(x, layer).flatten(0, 1)  # [T*B, C, H, W] spike counts
    g = conv.groups
    per_group = n.unflatten(1, (g, -1)).sum(2)  # [N, g, H, W]: spikes per group
    ones = per_group.new_ones((g, 1, kh, kw))
    reach = F.conv2d(per_group, ones, None, conv.stride, conv.padding, conv.dilation, g)
    layer.synops += int(reach.sum(dtype=torch.float64)) * (c_out // g)
    spikes = int(n.sum(dtype=torch.float64))
    layer.input_spikes += spikes
    layer.input_neurons += n.numel() * layer.pool_area


class OpCounter:
    """Context manager counting the operations of every forward of `model` inside it:
    `with OpCounter(model) as ops: model(x)`, then `ops.report()`. Forward hooks read each
    synaptic layer's input; the network's outputs are unchanged."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers = synaptic_layers(model)
        self._handles: list[Any] = []
        self.T: int | None = None

    def __enter__(self) -> OpCounter:
        for layer in self.layers:
            def hook(mod: nn.Module, args: tuple, out: Tensor, layer: SynapticLayer = layer):
                x = args[0]
                if self.T is None:
                    self.T = int(x.shape[0])
                with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
                    _count(layer, x, out)  # exact counts: no reduced-precision convolutions

            self._handles.append(layer.module.register_forward_hook(hook))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def report(self, pj_mac: float = PJ_MAC, pj_ac: float = PJ_AC) -> dict[str, Any]:
        """Per layer and total: input firing rate, dense MACs, SynOps, MACs and energy, per
        sample (averaged over the samples counted), and the ANN / dense comparisons."""
        return energy_report(self.layers, self.T, pj_mac, pj_ac)


@dataclass
class _Totals:
    dense: float = 0.0
    synops: float = 0.0
    macs: float = 0.0
    per_layer: list[dict[str, Any]] = field(default_factory=list)


def energy_report(
    layers: list[SynapticLayer], T: int | None, pj_mac: float = PJ_MAC, pj_ac: float = PJ_AC
) -> dict[str, Any]:
    """The report of counted layers (see `OpCounter.report`)."""
    if pj_mac < 0 or pj_ac < 0:
        raise ValueError(f"energy per operation must be >= 0, got pj_mac={pj_mac}, pj_ac={pj_ac}")
    samples = layers[0].samples if layers else 0
    if not samples or T is None:
        raise ValueError("no forward pass was counted (empty data?)")
    tot = _Totals()
    for la in layers:
        dense = la.dense_macs / samples
        syn = la.synops / samples
        macs = dense if la.source == FRAMES else 0.0
        tot.dense += dense
        tot.synops += syn
        tot.macs += macs
        tot.per_layer.append({
            "layer": la.name,
            "type": la.kind,
            "input": la.input,
            "input_rate": la.input_spikes / la.input_neurons if la.input_neurons else None,
            "dense_macs": dense,
            "synops": syn,
            "macs": macs,
            "energy_pj": pj_mac * macs + pj_ac * syn,
        })
    e_snn = pj_mac * tot.macs + pj_ac * tot.synops
    e_ann = pj_mac * tot.dense / T
    return {
        "per_sample": True,
        "samples": samples,
        "T": T,
        "pj_mac": pj_mac,
        "pj_ac": pj_ac,
        "layers": tot.per_layer,
        "dense_macs": tot.dense,
        "synops": tot.synops,
        "macs": tot.macs,
        "energy_pj": e_snn,
        "ann_macs": tot.dense / T,
        "ann_energy_pj": e_ann,
        "dense_energy_pj": pj_mac * tot.dense,
        "ann_over_snn": e_ann / e_snn if e_snn > 0 else None,
    }


def format_report(rep: dict[str, Any]) -> str:
    """The report as a text table (per sample)."""
    lines = [
        f"operations per sample (mean of {rep['samples']}, T={rep['T']}); energy at "
        f"{rep['pj_mac']} pJ/MAC, {rep['pj_ac']} pJ/AC",
        f"  {'layer':<20} {'input':<24} {'in rate':>8} {'dense MACs':>12} {'SynOps':>12} "
        f"{'MACs':>12} {'energy nJ':>10}",
    ]
    for la in rep["layers"]:
        rate = "-" if la["input_rate"] is None else f"{la['input_rate']:.4f}"
        lines.append(
            f"  {la['layer']:<20} {la['input']:<24} {rate:>8} {la['dense_macs']:>12.4g} "
            f"{la['synops']:>12.4g} {la['macs']:>12.4g} {la['energy_pj'] / 1e3:>10.4g}"
        )
    lines.append(
        f"  {'total':<20} {'':<24} {'':>8} {rep['dense_macs']:>12.4g} {rep['synops']:>12.4g} "
        f"{rep['macs']:>12.4g} {rep['energy_pj'] / 1e3:>10.4g}"
    )
    ratio = rep["ann_over_snn"]
    lines.append(
        f"  SNN {rep['energy_pj'] / 1e6:.4g} uJ; same network as an ANN (all MACs, one pass) "
        f"{rep['ann_energy_pj'] / 1e6:.4g} uJ"
        + (f" ({ratio:.2f}x the SNN)" if ratio is not None else "")
        + f"; all T steps as MACs {rep['dense_energy_pj'] / 1e6:.4g} uJ"
    )
    return "\n".join(lines)


def counting(model: nn.Module) -> OpCounter | None:
    """An OpCounter for `model`, or None when it is not a tmkt backbone (so that callers such as
    the trainer can count where they can and skip otherwise)."""
    try:
        return OpCounter(model)
    except ValueError:
        return None


def with_energy(model: nn.Module, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()` (an evaluation of `model`) with the operations counted in the same pass: its
    result gains "energy" (the report at the default constants) when `model` is a tmkt
    backbone; other models are run as they are. Used for results.json at the end of training."""
    ops = counting(model)
    if ops is None:
        return run()
    with ops:
        res = run()
    res["energy"] = ops.report()
    return res
