"""`digits_sim` lives in `tmkt.datasets.sim`; this module lets the registry find it by name."""

from tmkt.datasets.sim import digits_sim

__all__ = ["digits_sim"]
