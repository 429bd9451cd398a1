"""AEDAT4 ``.aedat4`` reader through the ``aedat`` package (Rust decoder, LZ4/ZSTD packets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import EventFileError, Recording, check_sensor_size, make_events, within_sensor


def read_aedat4(
    path: str | Path, *, sensor_size: tuple[int, int] | None = None, clip: bool = False
) -> Recording:
    """Read the events stream with the lowest id (as tonic does); sensor size from the file."""
    import aedat

    path = Path(path)
    if not path.is_file():
        raise EventFileError(f"{path}: no such event file")
    try:
        decoder = aedat.Decoder(str(path))
        streams = decoder.id_to_stream()
        event_ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
        if not event_ids:
            raise EventFileError(f"{path}: the AEDAT4 file has no events stream")
        target = event_ids[0]
        chunks = [pk["events"] for pk in decoder if pk["stream_id"] == target and "events" in pk]
    except EventFileError:
        raise
    except Exception as err:  # the Rust decoder raises plain exceptions on malformed files
        raise EventFileError(f"{path}: cannot decode AEDAT4 file: {err}") from None
    if sensor_size is None:
        sensor_size = (int(streams[target]["width"]), int(streams[target]["height"]))
    sensor_size = check_sensor_size(path, sensor_size)
    if chunks:
        raw = np.concatenate(chunks)
        events = make_events(raw["t"].astype(np.int64), raw["x"], raw["y"], raw["on"])
    else:
        events = make_events(*(np.zeros(0, np.int64),) * 4)
    return Recording(within_sensor(path, events, sensor_size, clip), sensor_size)
