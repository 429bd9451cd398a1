"""Events -> per-polarity count frames (T, 2, H, W), with area-summing downsampling.

Channel 0 = OFF, channel 1 = ON. Resizing maps each event (or source pixel) to the target pixel
``floor(x * W_out / W_in)``, so every event is counted exactly once: counts are conserved.
"""

from __future__ import annotations

import numpy as np

BINNINGS = ("time", "count")
NORMS = ("none", "log1p", "clip")


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


def _time_bins(t: np.ndarray, T: int) -> np.ndarray:
    """Bin index of each event for T equal-duration bins over [t_min, t_max], last bin closed."""
    t0 = int(t.min())
    span = int(t.max()) - t0
    if span == 0:
        return np.zeros(len(t), dtype=np.int64)
    b = t.astype(np.int64, copy=True)
    b -= t0
    b *= T
    b //= span
    np.minimum(b, T - 1, out=b)
    return b


def _count_bins(n: int, T: int) -> np.ndarray:
    """Bin index of each event for T bins of (nearly) equal event count, in array order."""
    b = np.arange(n, dtype=np.int64)
    b *= T
    b //= max(n, 1)
    return b


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

    ``binning="time"``: T bins of equal duration from the first to the last event (He et al.);
    ``"count"``: T bins of equal event count ([ours] option). ``norm``: "none" (counts),
    "log1p", or "clip" (min(count, clip_max)). An empty recording gives all-zero frames.
    """
    if int(T) != T or T < 1:
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
    n_bins = T * 2 * h_out * w_out
    if len(events) == 0:
        return np.zeros((T, 2, h_out, w_out), dtype=np.float32)

    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    if x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height:
        raise ValueError(
            f"events outside the {width}x{height} sensor (x in [{x.min()}, {x.max()}], "
            f"y in [{y.min()}, {y.max()}]); read with clip=True or pass the right sensor_size"
        )
    if w_out != width:
        x *= w_out
        x //= width
    if h_out != height:
        y *= h_out
        y //= height
    if binning == "time":
        idx = _time_bins(events["t"], T)
    else:
        idx = _count_bins(len(events), T)
    idx *= 2
    idx += events["p"] != 0
    idx *= h_out
    idx += y
    idx *= w_out
    idx += x
    counts = np.bincount(idx, minlength=n_bins).astype(np.float32)
    return _normalise(counts.reshape(T, 2, h_out, w_out), norm, clip_max)


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
