"""Read event files of every supported format into one structured array plus the sensor size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .formats.aedat2 import read_aedat2
from .formats.aedat4 import read_aedat4
from .formats.base import EVENT_DTYPE, EventFileError, Recording, make_events
from .formats.nbin import read_bin
from .formats.numpy_events import read_numpy_events
from .formats.prophesee_dat import read_prophesee_dat

__all__ = [
    "EVENT_DTYPE",
    "EventFileError",
    "Recording",
    "READERS",
    "make_events",
    "read_events",
    "read_bin",
    "read_aedat2",
    "read_aedat4",
    "read_prophesee_dat",
    "read_numpy_events",
]

READERS: dict[str, Callable[..., Recording]] = {
    ".bin": read_bin,
    ".aedat": read_aedat2,
    ".aedat4": read_aedat4,
    ".dat": read_prophesee_dat,
    ".npy": read_numpy_events,
    ".npz": read_numpy_events,
}
"""File extension (lower case) -> reader; every reader takes ``path, *, sensor_size, clip``."""


def read_events(
    path: str | Path, *, clip: bool = False, sensor_size: tuple[int, int] | None = None
) -> Recording:
    """Read any supported event file, choosing the reader by extension.

    ``clip=False`` raises EventFileError on events outside the sensor; ``clip=True`` drops them.
    ``sensor_size`` (width, height) overrides the format's default or stored size.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise EventFileError(
            f"{path}: unknown event file extension {path.suffix!r}; "
            f"supported: {', '.join(sorted(READERS))}"
        )
    if not path.is_file():
        raise EventFileError(f"{path}: no such event file")
    if sensor_size is None:
        return reader(path, clip=clip)
    return reader(path, clip=clip, sensor_size=sensor_size)
