"""MODELS registry and build_model: name -> spiking backbone."""

from __future__ import annotations

from typing import Any

from tmkt.models.base import SpikingNet, check_in_shape
from tmkt.registry import Registry
from tmkt.snn.layers import BN_MODES
from tmkt.snn.neuron import LIFConfig

MODELS: Registry = Registry("model")


def build_model(
    name: str,
    num_classes: int,
    in_shape: tuple[int, int, int] = (2, 48, 48),
    width: float = 1.0,
    neuron: LIFConfig | dict[str, Any] | None = None,
    bn_mode: str = "fold",
    **neuron_kwargs: Any,
) -> SpikingNet:
    """Build backbone `name` for `num_classes` classes and input (C, H, W). Neuron options come
    as a LIFConfig/dict (`neuron`) and/or keywords (tau, v_threshold, reset, detach_reset,
    surrogate, alpha); bn_mode 'fold' (default) or 'per_step' (see SeqBatchNorm2d)."""
    factory = MODELS.get(name)
    if not (isinstance(width, int | float) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    cfg = LIFConfig.from_kwargs(neuron, **neuron_kwargs)
    return factory(
        num_classes=num_classes,
        in_shape=check_in_shape(in_shape),
        width=float(width),
        neuron=cfg,
        bn_mode=bn_mode,
    )
