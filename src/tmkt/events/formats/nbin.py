"""N-MNIST / N-Caltech101 ``.bin`` reader (Orchard et al. 2015, 5 bytes per event)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import (
    EventFileError,
    Recording,
    check_sensor_size,
    infer_sensor_size,
    make_events,
    read_bytes,
    within_sensor,
)

NMNIST_SENSOR = (34, 34)
OVERFLOW_Y = 240
"""An event with y == 240 marks a timestamp overflow in the authors' format, not a real event."""
OVERFLOW_INCREMENT = 2**13
"""Time added at each overflow marker, as in the authors' eventvision.py (and tonic)."""


def read_bin(
    path: str | Path, *, sensor_size: tuple[int, int] | None = None, clip: bool = False
) -> Recording:
    """Read a ``.bin`` file: x (8 bits), y (8 bits), polarity (1 bit), timestamp (23 bits, µs).

    ``sensor_size=None`` means 34x34 (N-MNIST) when every event fits, otherwise the smallest
    size that holds the events (pass ``(240, 180)`` for N-Caltech101 to get a fixed size).
    """
    raw = read_bytes(path)
    if len(raw) % 5 != 0:
        raise EventFileError(
            f"{path}: truncated or not an N-MNIST/N-Caltech101 .bin file: "
            f"{len(raw)} bytes is not a multiple of 5 bytes per event"
        )
    rec = raw.reshape(-1, 5)
    x = rec[:, 0]
    y = rec[:, 1]
    b2 = rec[:, 2].astype(np.int64)
    p = b2 >> 7
    t = ((b2 & 0x7F) << 16) | (rec[:, 3].astype(np.int64) << 8) | rec[:, 4]
    overflow = y == OVERFLOW_Y
    if overflow.any():
        t = t + OVERFLOW_INCREMENT * np.cumsum(overflow, dtype=np.int64)
        keep = ~overflow
        t, x, y, p = t[keep], x[keep], y[keep], p[keep]
    events = make_events(t, x, y, p)
    if sensor_size is None:
        sensor_size = infer_sensor_size(events, NMNIST_SENSOR)
    else:
        sensor_size = check_sensor_size(path, sensor_size)
    return Recording(within_sensor(path, events, sensor_size, clip), sensor_size)
