"""Events -> per-polarity count frames (T, 2, H, W), with area-summing downsampling.

Channel 0 = OFF, channel 1 = ON. Resizing maps each event (or source pixel) to the target pixel
``floor(x * W_out / W_in)``, so every event is counted exactly once: counts are conserved.
"""

from __future__ import annotations

import numpy as np

BINNINGS = ("time", "count")
NORMS = ("none", "log1p", "clip")
_PER_BIN_MIN_EVENTS = 1 << 16
"""From this many events on, one bincount per bin beats adding a bin offset to every event."""
_CHUNK = 1 << 20
"""Events handled at once on large streams (bounds the temporary index arrays)."""


def frame_size(size: int | tuple[int, int] | None, sensor_size: tuple[int, int]) -> tuple[int, int]:
    """Resolve ``size`` (int, (height, width) or None = the sensor) to an (H, W) pair."""
    width, height = (int(v) for v in sensor_size)
    if size is None:
        return height, width
    if isinstance(size, int | np.integer):
        h_out = w_out = int(size)
    else:
        h_out, w_out = (int(v) for v in size)
    if not (0 < h_out <= height and 0 < w_out <= width):
        raise ValueError(
            f"frame size (H, W) = ({h_out}, {w_out}) must be positive and at most the sensor "
            f"(H, W) = ({height}, {width}); count frames are only downsampled (summed), never "
            "upsampled"
        )
    return h_out, w_out


def _time_edges(t: np.ndarray, T: int) -> np.ndarray | None:
    """Start index of each of the T time bins, then the end (T + 1 values), for sorted ``t``.

    Same bins as ``_time_bins``: event j is in bin i iff (t_j - t0) * T // span == i, i.e.
    t_j >= t0 + ceil(i * span / T). ``t`` must be contiguous; None when it is not sorted.
    """
    n = len(t)
    if n > 1 and not (t[1:] >= t[:-1]).all():
        return None
    t0 = int(t[0])
    span = int(t[-1]) - t0
    edges = np.full(T + 1, n, dtype=np.intp)
    edges[0] = 0
    if span > 0 and T > 1:
        starts = [t0 - (-(i * span) // T) for i in range(1, T)]  # exact Python integers
        edges[1:T] = np.searchsorted(t, starts, side="left")
    return edges


def _count_edges(n: int, T: int) -> np.ndarray:
    """Start index of each of T bins of (nearly) equal event count, then the end (T + 1 values).

    Event j is in bin j * T // n, so bin i starts at ceil(i * n / T).
    """
    i = np.arange(T + 1, dtype=np.int64)
    return (-(-(i * n) // T)).astype(np.intp)


def _check_fields(events: np.ndarray) -> None:
    """Refuse non-integer coordinates and polarities other than integer/bool."""
    for name in ("x", "y"):
        if events.dtype[name].kind not in "iu":
            raise ValueError(f"event field {name!r} must be integer, got {events.dtype[name]}")
    if events.dtype["t"].kind not in "iu":
        raise ValueError(f"event field 't' must be integer microseconds, got {events.dtype['t']}")
    if events.dtype["p"].kind not in "iub":
        raise ValueError(f"event field 'p' must be integer or bool, got {events.dtype['p']}")


def _out_of_range(events: np.ndarray, sensor: tuple[int, int]) -> ValueError:
    """The error for events outside the sensor or polarities other than 0/1 (full ranges)."""
    width, height = sensor
    x, y, p = (events[f].astype(np.int64) for f in ("x", "y", "p"))
    if p.min() < 0 or p.max() > 1:
        return ValueError(f"event polarity p must be 0 (OFF) or 1 (ON); got [{p.min()}, {p.max()}]")
    return ValueError(
        f"events outside the {width}x{height} sensor (x in [{x.min()}, {x.max()}], "
        f"y in [{y.min()}, {y.max()}]); read with clip=True or pass the right sensor_size"
    )


def _pixel_index(
    events: np.ndarray, sensor: tuple[int, int], out_hw: tuple[int, int]
) -> np.ndarray:
    """Flat (polarity, y, x) index of every event in one (2, H_out, W_out) frame.

    Each field is converted once to a contiguous intp array; bounds are checked on those.
    """
    width, height = sensor
    h_out, w_out = out_hw
    y = events["y"].astype(np.intp)
    x = events["x"].astype(np.intp)
    p = events["p"].astype(np.intp)
    bad = y.max() >= height or x.max() >= width or p.max() > 1
    if not bad and "i" in (events.dtype["x"].kind, events.dtype["y"].kind):
        bad = y.min() < 0 or x.min() < 0
    if not bad and events.dtype["p"].kind == "i":
        bad = p.min() < 0
    if bad:
        raise _out_of_range(events, sensor)
    if (h_out, w_out) != (height, width):  # floor(y * H_out / H), floor(x * W_out / W)
        y = (np.arange(height, dtype=np.intp) * h_out // height)[y]
        x = (np.arange(width, dtype=np.intp) * w_out // width)[x]
    y *= w_out
    y += x
    p *= h_out * w_out
    y += p
    return y


def _normalise(counts: np.ndarray, norm: str, clip_max: float) -> np.ndarray:
    """Apply the frame normalisation to float32 counts, in place."""
    if norm == "log1p":
        np.log1p(counts, out=counts)
    elif norm == "clip":
        np.minimum(counts, np.float32(clip_max), out=counts)
    return counts


def events_to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    T: int,
    *,
    size: int | tuple[int, int] | None = None,
    binning: str = "time",
    norm: str = "none",
    clip_max: float = 1.0,
) -> np.ndarray:
    """Count events into float32 frames (T, 2, H, W); ``size`` is (H, W) or an int (square).

    ``binning="time"``: T bins of equal duration from the first to the last event, the last
    bin closed (He et al.); ``"count"``: T bins of equal event count in array order ([ours]
    option). ``norm``: "none" (counts), "log1p", or "clip" (min(count, clip_max)).
    An empty recording gives all-zero frames.
    """
    if isinstance(T, bool) or int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    T = int(T)
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    names = events.dtype.names or ()
    if not {"t", "x", "y", "p"} <= set(names):
        raise ValueError(f"events must be a structured array with t, x, y, p fields; got {names}")
    width, height = (int(v) for v in sensor_size)
    h_out, w_out = frame_size(size, (width, height))
    if len(events) == 0:
        return np.zeros((T, 2, h_out, w_out), dtype=np.float32)

    _check_fields(events)
    sensor, out_hw = (width, height), (h_out, w_out)
    plane = 2 * h_out * w_out
    if binning == "count":
        edges = _count_edges(len(events), T)
    else:
        edges = _time_edges(np.ascontiguousarray(events["t"]), T)
    if edges is None:  # unsorted timestamps: bin every event arithmetically
        return _frames_unsorted(events, sensor, out_hw, T, norm, clip_max)
    if len(events) < _PER_BIN_MIN_EVENTS:
        idx = _pixel_index(events, sensor, out_hw)
        idx += np.repeat(np.arange(0, T * plane, plane, dtype=np.intp), edges[1:] - edges[:-1])
        counts = np.bincount(idx, minlength=T * plane).astype(np.float32)
        return _normalise(counts.reshape(T, 2, h_out, w_out), norm, clip_max)
    counts = np.zeros((T, plane), dtype=np.int64)
    for i in range(T):
        for start in range(int(edges[i]), int(edges[i + 1]), _CHUNK):
            chunk = events[start : min(start + _CHUNK, int(edges[i + 1]))]
            counts[i] += np.bincount(_pixel_index(chunk, sensor, out_hw), minlength=plane)
    frames = counts.astype(np.float32).reshape(T, 2, h_out, w_out)
    return _normalise(frames, norm, clip_max)


def _frames_unsorted(
    events: np.ndarray,
    sensor: tuple[int, int],
    out_hw: tuple[int, int],
    T: int,
    norm: str,
    clip_max: float,
) -> np.ndarray:
    """Time-binned frames of events whose timestamps are not sorted (chunked, arithmetic bins)."""
    h_out, w_out = out_hw
    plane = 2 * h_out * w_out
    t = events["t"]
    t0 = int(t.min())
    span = int(t.max()) - t0
    counts = np.zeros(T * plane, dtype=np.int64)
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        idx = _pixel_index(chunk, sensor, out_hw)
        if span > 0:
            b = chunk["t"].astype(np.int64)
            b -= t0
            b *= T
            b //= span
            np.minimum(b, T - 1, out=b)
            b *= plane
            idx += b
        counts += np.bincount(idx, minlength=T * plane)
    frames = counts.astype(np.float32).reshape(T, 2, h_out, w_out)
    return _normalise(frames, norm, clip_max)


def _group_starts(n_in: int, n_out: int) -> np.ndarray:
    """First source index of each target cell under the map i -> floor(i * n_out / n_in)."""
    target = np.arange(n_in, dtype=np.int64) * n_out // n_in
    return np.searchsorted(target, np.arange(n_out, dtype=np.int64))


def downsample_sum(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Sum count frames (..., H, W) over areas down to ``size`` (H, W); totals are conserved.

    Source pixel (i, j) goes to target (floor(i H_out / H), floor(j W_out / W)), the same map
    ``events_to_frames`` applies to events, so both routes give identical frames.
    """
    frames = np.asarray(frames)
    if frames.ndim < 2:
        raise ValueError(f"frames must have at least 2 dimensions (..., H, W); got {frames.shape}")
    height, width = frames.shape[-2:]
    h_out, w_out = frame_size(size, (width, height))
    out = frames
    if w_out != width:
        out = np.add.reduceat(out, _group_starts(width, w_out), axis=-1)
    if h_out != height:
        out = np.add.reduceat(out, _group_starts(height, h_out), axis=-2)
    return out if out is not frames else frames.copy()
