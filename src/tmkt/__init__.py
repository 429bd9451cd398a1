"""tmkt: Time-step Mixup Knowledge Transfer for spiking neural networks (static -> event)."""

__version__ = "0.1.0"
