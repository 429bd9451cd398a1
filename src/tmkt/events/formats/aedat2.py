"""AER-DAT 2.0 ``.aedat`` reader for DVS128 recordings (the original CIFAR10-DVS release)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import (
    EventFileError,
    Recording,
    check_sensor_size,
    header_text,
    make_events,
    read_bytes,
    skip_header_lines,
    within_sensor,
)

DVS128_SENSOR = (128, 128)
ORIENTATIONS = ("spikingjelly", "jaer")
_ADDRESS_DTYPE = np.dtype([("address", ">u4"), ("t", ">u4")])


def aedat2_header(path: str | Path, data: np.ndarray) -> tuple[str, str | None, int]:
    """Parse the '#' header: (version string, AEChip class name or None, data start offset)."""
    start = skip_header_lines(data, ord("#"))
    version = ""
    chip = None
    for line in header_text(data, start):
        found = re.match(r"#!AER-DAT(\S+)", line.strip())
        if found:
            version = found.group(1)
        if line.startswith("# AEChip:"):
            chip = line.split(":", 1)[1].strip()
    if not version:
        raise EventFileError(f"{path}: no '#!AER-DAT' header line; not an AER-DAT file")
    return version, chip, start


def read_aedat2(
    path: str | Path,
    *,
    sensor_size: tuple[int, int] = DVS128_SENSOR,
    orientation: str = "spikingjelly",
    clip: bool = False,
) -> Recording:
    """Read a DVS128 AER-DAT 2.0 file: big-endian uint32 address, uint32 timestamp (µs).

    Raw address bits: polarity = bit 0, column = bits 1-7, row = bits 8-14 (jAER DVS128).
    ``orientation="spikingjelly"`` (default, [ours]) maps them as spikingjelly's CIFAR10-DVS
    loader does: x = 127 - row, y = 127 - column, p = 1 - bit0 (upright images, ON = 1);
    ``"jaer"`` keeps x = 127 - column, y = row, p = 1 - bit0 (jAER's DVS128 view).
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    sensor_size = check_sensor_size(path, sensor_size)
    data = read_bytes(path)
    version, chip, start = aedat2_header(path, data)
    if not version.startswith("2."):
        raise EventFileError(f"{path}: AER-DAT version {version} is not supported (only 2.x)")
    body = data[start:]
    if len(body) % 8 != 0:
        raise EventFileError(
            f"{path}: truncated AER-DAT 2.0 data: {len(body)} bytes after the header "
            "is not a multiple of 8 bytes per event"
        )
    if len(body) and chip is not None and "DVS128" not in chip:
        raise EventFileError(
            f"{path}: AEChip {chip} is not a DVS128; only the DVS128 address layout is decoded"
        )
    raw = body.view(_ADDRESS_DTYPE)
    address = raw["address"].astype(np.int64)
    column = (address >> 1) & 0x7F
    row = (address >> 8) & 0x7F
    p = 1 - (address & 1)
    if orientation == "spikingjelly":
        x, y = 127 - row, 127 - column
    else:
        x, y = 127 - column, row
    events = make_events(raw["t"].astype(np.int64), x, y, p)
    return Recording(within_sensor(path, events, sensor_size, clip), sensor_size)
