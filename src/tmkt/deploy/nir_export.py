"""Export the event path of a trained `vgg_snn` / `cnn_small` to NIR (neuromorphic hardware).

The graph, per time step: input frame (C, H, W) -> for each conv-BN-LIF block a `Conv2d`
(BN folded in, eval mode: W' = W gamma / sqrt(var + eps), b = beta - mean gamma / sqrt(var +
eps)) and a `LIF`; each 2x2 average pool an `AvgPool2d`; then `Flatten` and the event head as
`Affine` -> output logits (K). Outside the graph: turning events into frames, and the readout
(the logits' mean over the T steps, then argmax).

LIF mapping, with the time step `dt` (seconds, default 1e-4 as spikingjelly and most NIR
tools use): tmkt's m <- m + (x - m) / tau is the forward-Euler step of NIR's
tau_N dv/dt = (v_leak - v) + R I with tau_N = tau * dt, R = 1, v_leak = 0; v_threshold = V_th;
hard reset to v_reset = 0 (tmkt's m <- m (1 - s); its detached reset only changes gradients).
tmkt fires on h >= V_th, NIR's definition on v > v_threshold: they differ only when a
membrane equals the threshold exactly; spikingjelly's importer fires on >= as tmkt does.

Refused, naming the layer: soft reset (NIR's LIF resets to v_reset only), BN without running
statistics, and networks other than plain conv-BN-LIF stacks (the ResNets' residual sums and
pre-activation BN are not exported). `model.bn_mode: per_step` is exported: in eval mode its
BN normalises every step with the same running statistics, as `fold` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tmkt.snn.layers import ConvBNLIF, SeqAvgPool2x2, SeqBatchNorm2d

DT = 1e-4
"""Default seconds per time step: NIR time constants are tau * dt."""


class ExportError(ValueError):
    """The network holds a construct the NIR export cannot express; the message names it."""


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise ExportError(
            "NIR export needs the 'nir' package (pip install nir==1.0.8)"
        ) from None
    return nir


def fold_bn(conv: nn.Conv2d, bn: SeqBatchNorm2d, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of conv followed by BN in eval mode, in float64."""
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise ExportError(
            f"{name}.bn: no running statistics (track_running_stats=False): its batch "
            "statistics cannot be folded into the convolution"
        )
    w = conv.weight.detach().double().cpu().numpy()
    b = (conv.bias.detach().double().cpu().numpy() if conv.bias is not None
         else np.zeros(w.shape[0]))
    mean = bn.running_mean.detach().double().cpu().numpy()
    var = bn.running_var.detach().double().cpu().numpy()
    gamma = bn.weight.detach().double().cpu().numpy() if bn.affine else np.ones_like(mean)
    beta = bn.bias.detach().double().cpu().numpy() if bn.affine else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    return w * scale[:, None, None, None], (b - mean) * scale + beta


def check_exportable(model: nn.Module) -> None:
    """ExportError naming the first construct NIR export refuses (see the module doc)."""
    from tmkt.models.resnet import SpikingResNet18, SpikingResNet19
    from tmkt.models.vgg import PlainSNN

    if isinstance(model, SpikingResNet18 | SpikingResNet19):
        kind = "pre-activation BN on residual sums" if isinstance(model, SpikingResNet18) \
            else "residual sums"
        raise ExportError(
            f"{type(model).__name__}: blocks.0 adds a shortcut to the block's output "
            f"({kind}); tmkt exports only plain conv-BN-LIF stacks (vgg_snn, cnn_small)"
        )
    if not isinstance(model, PlainSNN):
        raise ExportError(
            f"{type(model).__name__}: not a plain conv-BN-LIF stack (vgg_snn, cnn_small); "
            "NIR export supports only those"
        )
    for i, m in enumerate(model.layers):
        if isinstance(m, ConvBNLIF):
            c = m.lif.cfg
            if c.reset != "hard":
                raise ExportError(
                    f"layers.{i}.lif: soft reset (m <- m - V_th s) has no NIR equivalent: "
                    "NIR's LIF resets to v_reset (train with model.reset=hard)"
                )
            if m.lif.step_mode != "m":
                raise ExportError(f"layers.{i}.lif: single-step mode is not exported")
            conv = m.conv[0]
            if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
                raise ExportError(f"layers.{i}.conv: padding other than zeros is not exported")
        elif not isinstance(m, SeqAvgPool2x2):
            raise ExportError(f"layers.{i}: {type(m).__name__} is not exported")


def export_nir(
    model: nn.Module, *, dt: float = DT, dtype: type = np.float32,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """The event path of `model` (eval-mode parameters) as a `nir.NIRGraph` (see the module
    doc). `dtype`: of the stored arrays (float32; float64 keeps the folded weights unrounded)."""
    nir = _nir()
    if not dt > 0:
        raise ExportError(f"dt must be > 0 seconds, got {dt}")
    check_exportable(model)
    c, h, w = model.in_shape
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([c, h, w])})}
    edges: list[tuple[str, str]] = []
    prev = "input"

    def add(name: str, node: Any) -> None:
        nonlocal prev
        nodes[name] = node
        edges.append((prev, name))
        prev = name

    for i, m in enumerate(model.layers):
        if isinstance(m, ConvBNLIF):
            conv = m.conv[0]
            weight, bias = fold_bn(conv, m.bn, f"layers.{i}")
            add(f"layers_{i}_conv", nir.Conv2d(
                input_shape=(h, w), weight=weight.astype(dtype), stride=tuple(conv.stride),
                padding=tuple(conv.padding), dilation=tuple(conv.dilation), groups=conv.groups,
                bias=bias.astype(dtype),
            ))
            c = conv.out_channels
            h = (h + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) \
                // conv.stride[0] + 1
            w = (w + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) \
                // conv.stride[1] + 1
            cfg = m.lif.cfg
            shape = (c, h, w)
            add(f"layers_{i}_lif", nir.LIF(
                tau=np.full(shape, cfg.tau * dt, dtype=dtype), r=np.ones(shape, dtype=dtype),
                v_leak=np.zeros(shape, dtype=dtype),
                v_threshold=np.full(shape, cfg.v_threshold, dtype=dtype),
                v_reset=np.zeros(shape, dtype=dtype),
            ))
        else:  # SeqAvgPool2x2: 2x2, stride 2, floor
            add(f"layers_{i}_pool", nir.AvgPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ))
            h, w = h // 2, w // 2
    add("flatten", nir.Flatten(input_type={"input": np.array([c, h, w])}, start_dim=0,
                               end_dim=-1))
    head = model.head_evt
    add("head_evt", nir.Affine(
        weight=head.weight.detach().cpu().numpy().astype(dtype),
        bias=head.bias.detach().cpu().numpy().astype(dtype),
    ))
    add("output", nir.Output(output_type={"output": np.array([head.out_features])}))
    meta = {
        "producer": "tmkt",
        "dt": dt,
        "readout": "mean of the output over the T time steps, then argmax (outside the graph)",
        "threshold": "tmkt fires on v >= v_threshold",
        **(metadata or {}),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(graph: Any, out: str | Path) -> Path:
    """Write a NIR graph to an HDF5 file (gzip), creating the folder."""
    nir = _nir()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    nir.write(out, graph)
    return out
