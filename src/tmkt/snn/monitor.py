"""Firing-rate monitor: mean spike rate per LIF layer over the forwards inside a `with` block."""

from __future__ import annotations

from types import TracebackType

import torch
from torch import Tensor, nn

from tmkt.snn.neuron import LIF


class FiringRateMonitor:
    """Context manager: `with FiringRateMonitor(model) as mon: model(x)`; then `mon.rates()` gives
    {layer_name: mean spike rate}. Recording is off outside the block (LIF.monitor is None)."""

    def __init__(self, model: nn.Module) -> None:
        self._names = {
            m: n or type(m).__name__ for n, m in model.named_modules() if isinstance(m, LIF)
        }
        if not self._names:
            raise ValueError("FiringRateMonitor: the model contains no LIF layer")
        self._sum: dict[str, Tensor] = {}
        self._count: dict[str, int] = {}

    def __enter__(self) -> FiringRateMonitor:
        for m in self._names:
            if m.monitor is not None:
                raise RuntimeError("FiringRateMonitor: a monitor is already attached to this model")
            m.monitor = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for m in self._names:
            m.monitor = None

    def record(self, layer: LIF, spikes: Tensor) -> None:
        """Called by a LIF layer with its output spikes (no device sync here)."""
        name = self._names[layer]
        s = spikes.detach().sum(dtype=torch.float64)
        self._sum[name] = self._sum[name] + s if name in self._sum else s
        self._count[name] = self._count.get(name, 0) + spikes.numel()

    def rates(self) -> dict[str, float]:
        """Mean spike rate per LIF layer (spikes / neuron-steps), in model order."""
        return {
            n: float(self._sum[n]) / self._count[n] for n in self._names.values() if n in self._sum
        }

    def mean_rate(self) -> float:
        """Mean spike rate over all recorded neuron-steps."""
        total = sum(self._count.values())
        if total == 0:
            raise ValueError("FiringRateMonitor: nothing recorded yet")
        return float(sum(float(v) for v in self._sum.values())) / total


def record_firing_rates(model: nn.Module) -> FiringRateMonitor:
    """Alias: a FiringRateMonitor for `model`, to use as a context manager."""
    return FiringRateMonitor(model)
