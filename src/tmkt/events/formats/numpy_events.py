"""``.npy`` / ``.npz`` event arrays: structured t, x, y, p fields or an (N, 4) t, x, y, p array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import (
    EventFileError,
    Recording,
    check_sensor_size,
    infer_sensor_size,
    make_events,
    within_sensor,
)

FIELDS = ("t", "x", "y", "p")
COLUMN_ORDER = FIELDS
"""Column order of a plain (N, 4) array: t (µs), x, y, p (p > 0 means ON)."""


def _columns(path: Path, arr: np.ndarray) -> tuple[np.ndarray, ...]:
    """Split a structured or (N, 4) array into t, x, y, p columns, checking their values."""
    if arr.dtype.names is not None:
        missing = [f for f in FIELDS if f not in arr.dtype.names]
        if missing:
            raise EventFileError(
                f"{path}: structured event array lacks fields {missing} (has {arr.dtype.names})"
            )
        cols = tuple(arr[f].reshape(-1) for f in FIELDS)
    elif arr.ndim == 2 and arr.shape[1] == 4:
        cols = tuple(arr[:, i] for i in range(4))
    else:
        raise EventFileError(
            f"{path}: expected a structured array with fields {FIELDS} or an (N, 4) array "
            f"with columns {COLUMN_ORDER}; got dtype {arr.dtype} shape {arr.shape}"
        )
    for name, col in zip(FIELDS, cols, strict=True):
        if col.dtype.kind not in "biuf":
            raise EventFileError(f"{path}: event field {name!r} has non-numeric dtype {col.dtype}")
        if col.dtype.kind == "f" and len(col) and not np.all(np.isfinite(col)):
            raise EventFileError(f"{path}: event field {name!r} holds NaN or inf")
        if col.dtype.kind == "f" and len(col) and not np.array_equal(col, np.round(col)):
            raise EventFileError(f"{path}: event field {name!r} holds non-integer values")
    for name, col in zip(("x", "y"), cols[1:3], strict=True):
        if len(col) and (col.min() < 0 or col.max() > 65535):
            raise EventFileError(f"{path}: event field {name!r} outside 0..65535")
    return cols


def read_numpy_events(
    path: str | Path, *, sensor_size: tuple[int, int] | None = None, clip: bool = False
) -> Recording:
    """Read events saved with ``np.save`` / ``np.savez`` (no pickles).

    ``.npz``: key ``events`` (or the only array), or separate ``t``, ``x``, ``y``, ``p`` keys;
    an optional ``sensor_size`` key (width, height). Sensor size: the argument, else that key,
    else the smallest size holding the events.
    """
    path = Path(path)
    if not path.is_file():
        raise EventFileError(f"{path}: no such event file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:
        raise EventFileError(f"{path}: cannot load numpy file: {err}") from None
    stored_size = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = set(loaded.files)
            if "sensor_size" in keys:
                stored_size = tuple(int(v) for v in loaded["sensor_size"].reshape(-1))
            if "events" in keys:
                cols = _columns(path, loaded["events"])
            elif set(FIELDS) <= keys:
                arrays = [loaded[f].reshape(-1) for f in FIELDS]
                if len({len(a) for a in arrays}) != 1:
                    raise EventFileError(f"{path}: t, x, y, p arrays differ in length")
                cols = _columns(path, np.rec.fromarrays(arrays, names=list(FIELDS)))
            elif len(keys - {"sensor_size"}) == 1:
                cols = _columns(path, loaded[next(iter(keys - {"sensor_size"}))])
            else:
                raise EventFileError(
                    f"{path}: .npz needs an 'events' array or t, x, y, p arrays; has {sorted(keys)}"
                )
    else:
        cols = _columns(path, loaded)
    t, x, y, p = cols
    events = make_events(t.astype(np.int64), x, y, p > 0)
    if sensor_size is None:
        sensor_size = stored_size
    if sensor_size is None:
        sensor_size = infer_sensor_size(events)
    sensor_size = check_sensor_size(path, sensor_size)
    return Recording(within_sensor(path, events, sensor_size, clip), sensor_size)
