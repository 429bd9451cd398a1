"""A small conv-BN-LIF network for 34x34 inputs (N-MNIST), fast on CPU."""

from __future__ import annotations

from typing import Any

from tmkt.models.vgg import POOL, PlainSNN

CNN_SMALL_CFG: tuple[int | str, ...] = (32, POOL, 64, POOL, 128, POOL)


def cnn_small(**kw: Any) -> PlainSNN:
    """conv32 | P | conv64 | P | conv128 | P; 2x34x34 -> F = 128*4*4 = 2048."""
    return PlainSNN(CNN_SMALL_CFG, **kw)
