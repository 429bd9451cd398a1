"""Shared pieces of the event readers: the event dtype, the Recording type and bounds checks."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
"""Structured dtype of every event array: t in microseconds, p 0 = OFF, 1 = ON."""


class EventFileError(ValueError):
    """An event file is missing, malformed or holds events the caller did not allow."""


class Recording(NamedTuple):
    """Events of one file (structured ``EVENT_DTYPE`` array) and the sensor size (width, height)."""

    events: np.ndarray
    sensor_size: tuple[int, int]


def make_events(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pack four equal-length columns into one ``EVENT_DTYPE`` array (p: nonzero means ON)."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["t"] = t
    events["x"] = x
    events["y"] = y
    events["p"] = np.asarray(p) != 0
    return events


def read_bytes(path: str | Path) -> np.ndarray:
    """The whole file as a uint8 array; a missing path or a directory is an EventFileError."""
    path = Path(path)
    if not path.is_file():
        raise EventFileError(f"{path}: no such event file")
    return np.fromfile(path, dtype=np.uint8)


def skip_header_lines(data: np.ndarray, marker: int) -> int:
    """Offset of the first byte after the leading text lines that start with ``marker``."""
    pos = 0
    n = len(data)
    while pos < n and data[pos] == marker:
        newline = np.flatnonzero(data[pos : pos + 65536] == ord("\n"))
        if len(newline) == 0:
            return n
        pos += int(newline[0]) + 1
    return pos


def header_text(data: np.ndarray, end: int) -> list[str]:
    """The header bytes ``data[:end]`` decoded as text lines (undecodable bytes replaced)."""
    return data[:end].tobytes().decode("latin-1").splitlines()


def check_sensor_size(path: str | Path, sensor_size: tuple[int, int]) -> tuple[int, int]:
    """Validate a (width, height) pair of positive ints, naming the file on error."""
    try:
        width, height = (int(v) for v in sensor_size)
    except (TypeError, ValueError):
        raise EventFileError(
            f"{path}: sensor_size must be (width, height), got {sensor_size!r}"
        ) from None
    if width <= 0 or height <= 0 or width > 65535 or height > 65535:
        raise EventFileError(f"{path}: sensor_size must be positive and < 65536, got {sensor_size}")
    return width, height


def infer_sensor_size(events: np.ndarray, minimum: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Smallest (width, height) holding every event, at least ``minimum``."""
    if len(events) == 0:
        return minimum
    return (
        max(minimum[0], int(events["x"].max()) + 1),
        max(minimum[1], int(events["y"].max()) + 1),
    )


def within_sensor(
    path: str | Path, events: np.ndarray, sensor_size: tuple[int, int], clip: bool
) -> np.ndarray:
    """Return events inside the sensor; outside ones raise, or are dropped when ``clip``."""
    width, height = sensor_size
    inside = (events["x"] < width) & (events["y"] < height)
    n_out = len(events) - int(np.count_nonzero(inside))
    if n_out == 0:
        return events
    if clip:
        return events[inside]
    raise EventFileError(
        f"{path}: {n_out} of {len(events)} events lie outside the {width}x{height} sensor "
        f"(max x {int(events['x'].max())}, max y {int(events['y'].max())}): a damaged file, "
        "or one recorded on another sensor"
    )
