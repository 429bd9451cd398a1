"""tmkt.snn: LIF neuron, surrogate gradients, multi-step layer wrappers, firing-rate monitor."""

from tmkt.snn.layers import (
    ConvBNLIF,
    SeqAvgPool2x2,
    SeqBatchNorm2d,
    SeqFlatten,
    SeqToANN,
    bn_lif,
)
from tmkt.snn.monitor import FiringRateMonitor, record_firing_rates
from tmkt.snn.neuron import LIF, LIFConfig, lif_multistep, reset_states
from tmkt.snn.surrogate import ATan, Sigmoid, Surrogate, Triangle, build_surrogate

__all__ = [
    "ATan",
    "ConvBNLIF",
    "FiringRateMonitor",
    "LIF",
    "LIFConfig",
    "SeqBatchNorm2d",
    "SeqFlatten",
    "SeqAvgPool2x2",
    "SeqToANN",
    "Sigmoid",
    "Surrogate",
    "Triangle",
    "bn_lif",
    "build_surrogate",
    "lif_multistep",
    "record_firing_rates",
    "reset_states",
]
