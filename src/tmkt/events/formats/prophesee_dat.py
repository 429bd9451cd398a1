"""Prophesee ``.dat`` reader for CD/TD events (N-CARS, ATIS): 8 bytes per event."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import (
    EventFileError,
    Recording,
    check_sensor_size,
    header_text,
    infer_sensor_size,
    make_events,
    read_bytes,
    skip_header_lines,
    within_sensor,
)

EVENT_TYPES = (0, 12)
"""Accepted event-type bytes: 0 = 2D TD/CD events (N-CARS), 12 = CD events (newer files)."""
_RAW_DTYPE = np.dtype([("t", "<u4"), ("data", "<u4")])


def read_prophesee_dat(
    path: str | Path, *, sensor_size: tuple[int, int] | None = None, clip: bool = False
) -> Recording:
    """Read a ``.dat`` file: '% ' header, a type byte and a size byte, then 8-byte events.

    Each event: little-endian uint32 timestamp (µs), uint32 with x = bits 0-13,
    y = bits 14-27, polarity = bits 28-31. Sensor size: the argument, else the header's
    '% Width' / '% Height', else the smallest size holding the events (pass (120, 100) for N-CARS).
    """
    data = read_bytes(path)
    start = skip_header_lines(data, ord("%"))
    header = {}
    for line in header_text(data, start):
        found = re.match(r"%\s*(\w+)\s+(.*)", line)
        if found:
            header[found.group(1).lower()] = found.group(2).strip()
    if start == 0:
        raise EventFileError(f"{path}: no '%' header; not a Prophesee .dat file")
    if len(data) - start < 2:
        raise EventFileError(f"{path}: .dat file ends before the event type/size bytes")
    ev_type, ev_size = int(data[start]), int(data[start + 1])
    if ev_type not in EVENT_TYPES or ev_size != 8:
        raise EventFileError(
            f"{path}: unsupported .dat event type {ev_type} / size {ev_size} "
            f"(supported: types {EVENT_TYPES}, size 8)"
        )
    body = data[start + 2 :]
    if len(body) % 8 != 0:
        raise EventFileError(
            f"{path}: truncated .dat data: {len(body)} bytes is not a multiple of 8 per event"
        )
    raw = body.view(_RAW_DTYPE)
    word = raw["data"]
    events = make_events(
        raw["t"].astype(np.int64), word & 0x3FFF, (word >> 14) & 0x3FFF, (word >> 28) & 0xF
    )
    if sensor_size is None and "width" in header and "height" in header:
        sensor_size = (header["width"], header["height"])
    if sensor_size is None:
        sensor_size = infer_sensor_size(events)
    sensor_size = check_sensor_size(path, sensor_size)
    return Recording(within_sensor(path, events, sensor_size, clip), sensor_size)
