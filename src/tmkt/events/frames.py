"""Events -> per-polarity count frames (T, 2, H, W), with area-summing downsampling.

Channel 0 = OFF, channel 1 = ON. Resizing maps each event (or source pixel) to the target pixel
``floor(x * W_out / W_in)``, so every event is counted exactly once: counts are conserved.

Two implementations give identical frames: a compiled one-pass kernel (numba, used when it is
installed; ``TMKT_NUMBA=0`` in the environment or ``use_numba(False)`` turns it off) and the
vectorised numpy one (the fallback, and the oracle the tests compare the kernel with).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np

BINNINGS = ("time", "count")
NORMS = ("none", "log1p", "clip")
_PER_BIN_MIN_EVENTS = 1 << 16
"""From this many events on, one bincount per bin beats adding a bin offset to every event."""
_CHUNK = 1 << 20
"""Events handled at once on large streams (bounds the temporary index arrays)."""
_FAST_ADD_AT = np.lib.NumpyVersion(np.__version__) >= "1.25.0"
"""numpy >= 1.25 has a fast ``np.add.at``; older ones count with ``np.bincount``."""
_MANY_EVENTS = 1 << 16
"""``events_to_frames_many``: most events counted in one group (bounds the index arrays)."""
_MANY_BINS = 1 << 19
"""``events_to_frames_many``: most output bins (rows * T * 2 * H * W) of one group."""


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

    Same bins as the arithmetic ones: event j is in bin i iff (t_j - t0) * T // span == i, i.e.
    t_j >= t0 + ceil(i * span / T). None when ``t`` is not sorted.
    """
    n = len(t)
    if n > 1 and not (t[1:] >= t[:-1]).all():
        return None
    t0 = int(t[0])
    span = int(t[-1]) - t0
    if span <= 0 or T == 1:
        return np.array([0] + [n] * T, dtype=np.intp)
    starts = [t0 - (-(i * span) // T) for i in range(1, T)]  # exact Python integers
    return np.concatenate(([0], np.searchsorted(t, starts, side="left"), [n]))


def _count_edges(n: int, T: int) -> np.ndarray:
    """Start index of each of T bins of (nearly) equal event count, then the end (T + 1 values).

    Event j is in bin j * T // n, so bin i starts at ceil(i * n / T).
    """
    return np.array([-(-(i * n) // T) for i in range(T + 1)], dtype=np.intp)


def _check_fields(events: np.ndarray) -> None:
    """Refuse non-integer coordinates and polarities other than integer/bool."""
    error = _fields_error(events.dtype)
    if error:
        raise ValueError(error)


@functools.lru_cache(maxsize=64)
def _fields_error(dtype: np.dtype) -> str:
    """What is wrong with the t, x, y, p field types of ``dtype`` ("" if nothing)."""
    for name in ("x", "y"):
        if dtype[name].kind not in "iu":
            return f"event field {name!r} must be integer, got {dtype[name]}"
    if dtype["t"].kind not in "iu":
        return f"event field 't' must be integer microseconds, got {dtype['t']}"
    if dtype["p"].kind not in "iub":
        return f"event field 'p' must be integer or bool, got {dtype['p']}"
    return ""


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


def _maps(sensor: tuple[int, int], out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column maps floor(y * H_out / H), floor(x * W_out / W) as intp lookup tables."""
    width, height = sensor
    h_out, w_out = out_hw
    rows = np.arange(height, dtype=np.intp) * h_out // height
    cols = np.arange(width, dtype=np.intp) * w_out // width
    return rows, cols


def _pixel_index(
    events: np.ndarray,
    sensor: tuple[int, int],
    out_hw: tuple[int, int],
    check: bool = True,
    fields: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Flat (polarity, y, x) index ((p * H_out + y') * W_out + x') of every event in one
    (2, H_out, W_out) frame; ``check``: refuse events outside the sensor or p not in {0, 1}.

    ``fields``: x, y, p already as contiguous intp arrays (modified in place), else each field
    of ``events`` is converted once. Bounds are checked on the contiguous arrays.
    """
    width, height = sensor
    h_out, w_out = out_hw
    if fields is None:
        fields = tuple(events[f].astype(np.intp) for f in ("x", "y", "p"))
    x, y, p = fields
    if check:
        bad = y.max() >= height or x.max() >= width or p.max() > 1
        if not bad and "i" in (events.dtype["x"].kind, events.dtype["y"].kind):
            bad = y.min() < 0 or x.min() < 0
        if not bad and events.dtype["p"].kind == "i":
            bad = p.min() < 0
        if bad:
            raise _out_of_range(events, sensor)
    if (h_out, w_out) != (height, width):
        rows, cols = _maps(sensor, out_hw)
        y = rows[y]
        x = cols[x]
    p *= h_out
    p += y
    p *= w_out
    p += x
    return p


def _count_into(out: np.ndarray, idx: np.ndarray) -> None:
    """Add one to ``out[i]`` (flat float32, zeros) for every i in ``idx`` (< 2**24 entries).

    Float32 holds every count below 2**24 exactly, so this equals ``np.bincount`` cast to
    float32; ``np.add.at`` skips bincount's int64 array and the cast (about 3x faster).
    """
    if _FAST_ADD_AT:
        np.add.at(out, idx, np.float32(1))
    else:
        out += np.bincount(idx, minlength=len(out))


def _normalise(counts: np.ndarray, norm: str, clip_max: float) -> np.ndarray:
    """Apply the frame normalisation to float32 counts, in place."""
    if norm == "log1p":
        np.log1p(counts, out=counts)
    elif norm == "clip":
        np.minimum(counts, np.float32(clip_max), out=counts)
    return counts


def _check_args(T: int, binning: str, norm: str) -> int:
    """Validate T, binning and norm; return T as an int."""
    if isinstance(T, bool) or int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return int(T)


def _check_names(events: np.ndarray) -> None:
    """Refuse anything but a structured array with t, x, y, p fields."""
    names = events.dtype.names or ()
    if not {"t", "x", "y", "p"} <= set(names):
        raise ValueError(f"events must be a structured array with t, x, y, p fields; got {names}")


_NUMBA = os.environ.get("TMKT_NUMBA", "1") != "0"
"""Use the numba kernel when numba is installed (see ``use_numba``)."""
_COMPILED: dict = {}
"""Kernel source -> its numba-compiled function once made (None when numba cannot be imported)."""
_FLOAT_EXACT = 1 << 24
"""float32 holds every integer count below this exactly: smaller recordings count in float32."""
_KERNEL_OK, _KERNEL_RANGE, _KERNEL_SPAN = 0, 1, 2


def use_numba(enabled: bool = True) -> bool:
    """Turn the numba kernel on or off (off: the numpy path); return whether it was on."""
    global _NUMBA
    was, _NUMBA = _NUMBA, bool(enabled)
    return was


def numba_available() -> bool:
    """Whether the numba kernel is in use: enabled and numba importable (compiled lazily)."""
    return _kernel() is not None


def _count_events_py(ev, T, by_count, width, height, rows, cols, resize, w_out, plane_hw, out):
    """Kernel source (compiled by numba): add one per event to its (bin, p, y', x') cell.

    ``ev``: the structured events (records read in place, any integer field types); ``out``:
    flat (T * 2 * H_out * W_out), every cell written (need not be zeroed); ``rows`` /
    ``cols``: the ``_maps`` tables (if ``resize``).
    One pass takes the ranges of x, y, p and t and checks that t is sorted; the bins are those
    of the numpy path: by count, event j is in bin i iff j >= ceil(i * n / T); by time, iff
    t_j >= t_min + ceil(i * span / T) (the last bin closed; span 0: all in bin 0). Sorted
    events are counted bin by bin (bin ends by bisection) straight into that bin's planes of
    ``out``, zeroed just before (so they are in cache); unsorted ones by a search per event.
    Returns 0; 1 (nothing counted) for an event outside the sensor or p not 0/1; 2 (nothing
    counted) for a time span so long that i * span could overflow int64.
    """
    n = ev.shape[0]
    # pass 1: ranges of x, y, p and t, and whether t is sorted
    x_lo = x_hi = np.int64(ev[0].x)
    y_lo = y_hi = np.int64(ev[0].y)
    p_lo = p_hi = np.int64(ev[0].p)
    t_lo = t_hi = prev = np.int64(ev[0].t)
    drops = 0
    for j in range(1, n):
        xi = np.int64(ev[j].x)
        yi = np.int64(ev[j].y)
        pi = np.int64(ev[j].p)
        v = np.int64(ev[j].t)
        x_lo = min(x_lo, xi)
        x_hi = max(x_hi, xi)
        y_lo = min(y_lo, yi)
        y_hi = max(y_hi, yi)
        p_lo = min(p_lo, pi)
        p_hi = max(p_hi, pi)
        drops += v < prev
        prev = v
        t_lo = min(t_lo, v)
        t_hi = max(t_hi, v)
    if x_lo < 0 or x_hi >= width or y_lo < 0 or y_hi >= height or p_lo < 0 or p_hi > 1:
        return 1
    stops = np.empty(T, np.int64)  # stops[i]: one past the last event of bin i (sorted keys)
    stops[T - 1] = n
    sorted_t = True
    thr = np.empty(max(T - 1, 1), np.int64)  # thr[i]: first time of bin i + 1
    nthr = 0
    if by_count:
        for i in range(1, T):
            stops[i - 1] = -((-(i * n)) // T)
    else:
        sorted_t = drops == 0
        span = t_hi - t_lo
        if span > 0 and T > 1:
            if span > (1 << 62) // T:
                return 2
            for i in range(1, T):
                thr[i - 1] = t_lo - ((-(i * span)) // T)
            nthr = T - 1
        if sorted_t:
            for i in range(T - 1):
                if i >= nthr:
                    stops[i] = n
                    continue
                lo, hi = 0, n  # first j with ev[j].t >= thr[i]
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if np.int64(ev[mid].t) < thr[i]:
                        lo = mid + 1
                    else:
                        hi = mid
                stops[i] = lo
    if sorted_t:  # bin by bin: zero the bin's planes (they stay in cache), then count into them
        plane = 2 * plane_hw
        j = 0
        for b in range(T):
            stop = stops[b]
            base = b * plane
            out[base : base + plane] = 0
            if resize:
                while j < stop:
                    out[base + np.int64(ev[j].p) * plane_hw + rows[np.int64(ev[j].y)] * w_out
                        + cols[np.int64(ev[j].x)]] += 1
                    j += 1
            else:
                while j < stop:
                    out[base + np.int64(ev[j].p) * plane_hw + np.int64(ev[j].y) * w_out
                        + np.int64(ev[j].x)] += 1
                    j += 1
        return 0
    out[:] = 0
    for j in range(n):  # unsorted timestamps: search each event's bin
        v = np.int64(ev[j].t)
        b = 0
        while b < nthr and v >= thr[b]:
            b += 1
        yi = np.int64(ev[j].y)
        xi = np.int64(ev[j].x)
        if resize:
            yi = rows[yi]
            xi = cols[xi]
        out[(2 * b + np.int64(ev[j].p)) * plane_hw + yi * w_out + xi] += 1
    return 0


def compiled(source):
    """``source`` compiled by numba (``njit``, nogil, cached on disk; compiled on first use), or
    None when numba is missing or turned off (``TMKT_NUMBA=0``, ``use_numba(False)``): callers
    then take their numpy path. Shared by every numba kernel of tmkt."""
    if not _NUMBA:
        return None
    if source not in _COMPILED:
        try:
            import numba
        except ImportError:
            _COMPILED[source] = None
        else:
            _COMPILED[source] = numba.njit(cache=True, nogil=True)(source)
    return _COMPILED[source]


def _kernel():
    """The numba-compiled ``_count_events_py``, or None (see ``compiled``)."""
    return compiled(_count_events_py)


_KERNEL_KINDS = {"t": "iu", "x": "iu", "y": "iu", "p": "iub"}


def _kernel_ok(events: np.ndarray) -> bool:
    """Whether the kernel takes these events: a 1-d array of a dtype ``_kernel_dtype`` takes."""
    return events.ndim == 1 and _kernel_dtype(events.dtype)


@functools.lru_cache(maxsize=64)
def _kernel_dtype(dt: np.dtype) -> bool:
    """Native-order integer t, x, y, p (p: or bool) that fit int64, and no field numba cannot
    type (object, string or sub-array fields)."""
    for name in dt.names:
        f = dt[name]
        kinds = _KERNEL_KINDS.get(name, "iubf")
        if f.kind not in kinds or not f.isnative or f.subdtype is not None:
            return False
        if name in _KERNEL_KINDS and f.kind == "u" and f.itemsize == 8:
            return False
    return True


@functools.lru_cache(maxsize=64)
def _maps_cached(sensor: tuple[int, int], out_hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """``_maps`` as read-only int64 tables, made once per (sensor, size)."""
    maps = tuple(m.astype(np.int64) for m in _maps(sensor, out_hw))
    for m in maps:
        m.flags.writeable = False
    return maps


def _count_kernel(
    kernel,
    events: np.ndarray,
    sensor: tuple[int, int],
    out_hw: tuple[int, int],
    T: int,
    by_count: bool,
    out: np.ndarray,
) -> bool:
    """Count ``events`` (non-empty) into the flat, zeroed ``out`` with the kernel.

    False (nothing counted) where the kernel cannot: a time span that could overflow.
    """
    width, height = sensor
    h_out, w_out = out_hw
    rows, cols = _maps_cached(sensor, out_hw)
    resize = out_hw != (height, width)
    status = kernel(events, T, by_count, width, height, rows, cols, resize, w_out,
                    h_out * w_out, out)
    if status == _KERNEL_RANGE:
        raise _out_of_range(events, sensor)
    return status == _KERNEL_OK


def events_to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    T: int,
    *,
    size: int | tuple[int, int] | None = None,
    binning: str = "time",
    norm: str = "none",
    clip_max: float = 1.0,
    validate: bool = True,
) -> np.ndarray:
    """Count events into float32 frames (T, 2, H, W); ``size`` is (H, W) or an int (square).

    ``binning="time"``: T bins of equal duration from the first to the last event, the last
    bin closed (He et al.); ``"count"``: T bins of equal event count in array order ([ours]
    option). ``norm``: "none" (counts), "log1p", or "clip" (min(count, clip_max)).
    An empty recording gives all-zero frames. ``validate=False`` skips the field and range
    checks: only for events from ``tmkt.events.io`` readers with their own sensor size.
    """
    T = _check_args(T, binning, norm)
    _check_names(events)
    width, height = (int(v) for v in sensor_size)
    h_out, w_out = frame_size(size, (width, height))
    n = len(events)
    if n == 0:
        return np.zeros((T, 2, h_out, w_out), dtype=np.float32)
    sensor, out_hw = (width, height), (h_out, w_out)
    if validate:
        _check_fields(events)
    plane = 2 * h_out * w_out
    kernel = _kernel()
    if kernel is not None and _kernel_ok(events):
        counts = np.empty(T * plane, dtype=np.float32 if n < _FLOAT_EXACT else np.int64)
        if _count_kernel(kernel, events, sensor, out_hw, T, binning == "count", counts):
            frames = counts.reshape(T, 2, h_out, w_out)
            return _normalise(frames.astype(np.float32, copy=False), norm, clip_max)
    if binning == "count":
        edges = _count_edges(n, T)
    else:
        edges = _time_edges(np.ascontiguousarray(events["t"]), T)
    if edges is None:  # unsorted timestamps: bin every event arithmetically
        return _frames_unsorted(events, sensor, out_hw, T, norm, clip_max, validate)
    if n < _PER_BIN_MIN_EVENTS:
        idx = _pixel_index(events, sensor, out_hw, validate)
        idx += np.repeat(np.arange(0, T * plane, plane, dtype=np.intp), np.diff(edges))
        counts = np.zeros(T * plane, dtype=np.float32)
        _count_into(counts, idx)
        return _normalise(counts.reshape(T, 2, h_out, w_out), norm, clip_max)
    counts = np.zeros((T, plane), dtype=np.int64)
    for i in range(T):
        for start in range(int(edges[i]), int(edges[i + 1]), _CHUNK):
            chunk = events[start : min(start + _CHUNK, int(edges[i + 1]))]
            idx = _pixel_index(chunk, sensor, out_hw, validate)
            counts[i] += np.bincount(idx, minlength=plane)
    frames = counts.astype(np.float32).reshape(T, 2, h_out, w_out)
    return _normalise(frames, norm, clip_max)


def _frames_unsorted(
    events: np.ndarray,
    sensor: tuple[int, int],
    out_hw: tuple[int, int],
    T: int,
    norm: str,
    clip_max: float,
    validate: bool = True,
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
        idx = _pixel_index(chunk, sensor, out_hw, validate)
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


def events_to_frames_many(
    recordings: Sequence[np.ndarray],
    sensor_size: tuple[int, int],
    T: int,
    *,
    size: int | tuple[int, int] | None = None,
    binning: str = "time",
    norm: str = "none",
    clip_max: float = 1.0,
    validate: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Frames of many recordings at once: float32 (N, T, 2, H, W), row r equal to
    ``events_to_frames(recordings[r], ...)``.

    Recordings sharing one dtype are concatenated (in groups of at most ``_MANY_EVENTS``
    events and ``_MANY_BINS`` output bins) and counted with a handful of vectorised calls:
    per-recording bin edges from one ``np.searchsorted``, one flat index
    ``((r * T + bin) * 2 + p) * H * W + y * W + x`` and one ``np.add.at``. ``out``: a
    C-contiguous float32 array of that shape to fill (zeroed first) instead of a new one.
    """
    T = _check_args(T, binning, norm)
    width, height = (int(v) for v in sensor_size)
    h_out, w_out = frame_size(size, (width, height))
    for ev in recordings:
        _check_names(ev)
    shape = (len(recordings), T, 2, h_out, w_out)
    kernel = _kernel()
    if out is None:  # the kernel writes every cell of a row: no need to zero it first
        out = (np.zeros if kernel is None else np.empty)(shape, dtype=np.float32)
    else:  # e.g. rows of a memory-mapped cache: no intermediate array
        if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
        out = out.view(np.ndarray)
        if kernel is None:
            out[...] = 0
    kw = dict(size=(h_out, w_out), binning=binning, validate=validate)
    per_rec = T * 2 * h_out * w_out
    if kernel is not None:  # one kernel call per recording, straight into its row
        flat = out.reshape(len(recordings), per_rec)
        sensor, by_count = (width, height), binning == "count"
        for r, ev in enumerate(recordings):
            if len(ev) == 0:
                flat[r] = 0
                continue
            if validate:
                _check_fields(ev)
            if not (
                len(ev) < _FLOAT_EXACT
                and _kernel_ok(ev)
                and _count_kernel(kernel, ev, sensor, (h_out, w_out), T, by_count, flat[r])
            ):
                out[r] = events_to_frames(ev, sensor, T, **kw)
        return _normalise(out, norm, clip_max)
    group: list[int] = []
    n_group = 0
    dtype = None
    for r, ev in enumerate(recordings):
        n = len(ev)
        alone = n >= _PER_BIN_MIN_EVENTS or per_rec > _MANY_BINS
        if group and (
            alone
            or n_group + n > _MANY_EVENTS
            or (len(group) + 1) * per_rec > _MANY_BINS
            or (ev.dtype is not dtype and ev.dtype != dtype)
        ):
            _count_many(recordings, group, out, (width, height), T, binning, validate)
            group, n_group = [], 0
        if alone:  # one large recording: the single-recording path bounds its own memory
            out[r] = events_to_frames(ev, (width, height), T, **kw)
            continue
        if not group:
            dtype = ev.dtype
        group.append(r)
        n_group += n
    if group:
        _count_many(recordings, group, out, (width, height), T, binning, validate)
    return _normalise(out, norm, clip_max)


def _count_many(
    recordings: Sequence[np.ndarray],
    group: list[int],
    out: np.ndarray,
    sensor: tuple[int, int],
    T: int,
    binning: str,
    validate: bool,
) -> None:
    """Write the counts of ``recordings[group]`` (one dtype) into the matching rows of ``out``.

    Each field is concatenated once (cast to intp / int64 on the way). Each recording's bins
    are a contiguous run of its events (sorted timestamps or count bins), found for all
    recordings with one ``np.searchsorted`` on a key that stacks the recordings in time;
    unsorted recordings fall back to ``events_to_frames``.
    """
    h_out, w_out = out.shape[-2:]
    plane = 2 * h_out * w_out
    parts = [recordings[r] for r in group]
    lens = np.array([len(ev) for ev in parts], dtype=np.int64)
    n = int(lens.sum())
    if n == 0:
        return
    first = parts[0]
    if validate:
        _check_fields(first)
    fields = tuple(
        np.concatenate([ev[f] for ev in parts], dtype=np.intp, casting="unsafe")
        for f in ("x", "y", "p")
    )
    try:
        idx = _pixel_index(first, sensor, (h_out, w_out), validate, fields)
    except ValueError:  # report the ranges of the whole group
        raise _out_of_range(np.concatenate(parts), sensor) from None
    ends = np.cumsum(lens)
    starts = ends - lens
    if binning == "count":  # bin i of recording r starts at s_r + ceil(i * n_r / T)
        i = np.arange(T, dtype=np.int64)
        edges = starts[:, None] - (-(i * lens[:, None]) // T)
    else:
        t = np.concatenate([ev["t"] for ev in parts], dtype=np.int64, casting="unsafe")
        drops = np.flatnonzero(t[1:] < t[:-1]) + 1
        last = np.maximum(ends - 1, starts)
        t0 = np.where(lens > 0, t[np.minimum(starts, n - 1)], 0)
        span = np.where(lens > 0, t[np.minimum(last, n - 1)], 0) - t0
        step = int(span.max()) + 2
        at = np.searchsorted(starts, drops)  # time may only drop where a recording starts
        if (
            (at >= len(group)).any()
            or (starts[np.minimum(at, len(group) - 1)] != drops).any()
            or step > (1 << 62) // max(T, len(group) + 1)
        ):  # unsorted recordings, or a key that could overflow: one at a time
            for k, r in enumerate(group):
                out[r] = events_to_frames(
                    parts[k], sensor, T, size=(h_out, w_out), validate=False
                )
            return
        base = np.arange(len(group), dtype=np.int64) * step
        t -= np.repeat(t0 - base, lens)  # recording r at [r * step, r * step + span_r]
        i = np.arange(1, T, dtype=np.int64)
        thr = -(-(i * span[:, None]) // T)  # ceil(i * span_r / T)
        thr[span == 0] = 1  # one timestamp: everything in bin 0
        thr += base[:, None]
        edges = np.empty((len(group), T), dtype=np.int64)
        edges[:, 0] = starts
        edges[:, 1:] = np.searchsorted(t, thr.ravel()).reshape(len(group), T - 1)
    sizes = np.diff(edges.ravel(), append=n)
    idx += np.repeat(np.arange(0, len(group) * T * plane, plane, dtype=np.intp), sizes)
    rows = out[group[0] : group[-1] + 1]
    _count_into(rows.reshape(-1), idx)


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

