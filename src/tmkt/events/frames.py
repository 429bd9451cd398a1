"""Events -> per-polarity count frames (T, 2, H, W), with exact area-sum downsampling.

Channel 0 = OFF, channel 1 = ON. Resizing spreads each source pixel's count over the target cells
it overlaps, by overlap area: per axis, pixel [x, x + 1) covers [x W_out / W, (x + 1) W_out / W)
in target coordinates and gives each cell the fraction of its length inside it (2-D weight: the
product of the two). Counts are conserved and a uniform input gives a uniform output. At integer
ratios every pixel lies in one cell (``floor(x * W_out / W)``) and frames hold exact integer
counts; otherwise they are fractional, computed exactly (integer numerators, one division).

Two implementations give identical frames: a compiled one-pass kernel (numba, used when it is
installed; ``TMKT_NUMBA=0`` in the environment or ``use_numba(False)`` turns it off) and the
vectorised numpy one (the fallback, and the oracle the tests compare the kernel with).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import NamedTuple

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


class _Axis(NamedTuple):
    """Area weights of one axis: n_in source pixels onto n_out <= n_in cells.

    A pixel lies in one cell (``floor(x * n_out / n_in)``) or straddles the boundary of cells c
    and c + 1. Events are counted on a grid of n_out "whole" slots plus one slot per straddling
    pixel; cell c then sums d * slot c and, from each straddler, its share times d.
    """

    to_grid: np.ndarray
    """Source pixel -> grid slot (int64, read-only): its cell if whole, else n_out + rank."""
    n_out: int
    d: int
    """Denominator of the shares: n_out / gcd(n_in, n_out) (1 at an integer ratio)."""
    cells: np.ndarray
    """Straddler s (slot n_out + s) -> the cell c whose boundary with c + 1 it straddles."""
    first: np.ndarray
    """Straddler s -> its share of cell c times d (int64, 1 .. d - 1; d - first in c + 1)."""

    @property
    def n_grid(self) -> int:
        """Slots: n_out + the number of straddling pixels (n_out at an integer ratio)."""
        return self.n_out + len(self.cells)


@functools.lru_cache(maxsize=64)
def _axis(n_in: int, n_out: int) -> _Axis:
    """The ``_Axis`` of n_in pixels onto n_out cells (exact integer arithmetic, cached).

    Pixel x covers [x n_out / n_in, (x + 1) n_out / n_in) in cell units; its share of its first
    cell c = floor(x n_out / n_in), times d, is (min((c + 1) n_in, (x + 1) n_out) - x n_out) / g.
    """
    g = math.gcd(n_in, n_out)
    d = n_out // g
    x = np.arange(n_in, dtype=np.int64)
    cell = x * n_out // n_in
    first = np.minimum((cell + 1) * n_in - x * n_out, n_out) // g
    straddle = first < d
    to_grid = np.where(straddle, n_out + np.cumsum(straddle) - 1, cell)
    ax = _Axis(to_grid, n_out, d, cell[straddle], first[straddle])
    for a in (ax.to_grid, ax.cells, ax.first):
        a.flags.writeable = False
    return ax


def _grid_matrix(ax: _Axis) -> np.ndarray:
    """(n_out, n_grid) float64: the weight (times d) of each grid slot in each cell."""
    dense = np.zeros((ax.n_out, ax.n_grid), dtype=np.float64)
    dense[np.arange(ax.n_out), np.arange(ax.n_out)] = ax.d
    slots = np.arange(ax.n_out, ax.n_grid)
    dense[ax.cells, slots] = ax.first
    dense[ax.cells + 1, slots] = ax.d - ax.first
    return dense


def _area_matrix(n_in: int, n_out: int) -> tuple[np.ndarray, int]:
    """(n_out, n_in) float64 overlap shares times d, and d: cell c gets sum_x A[c, x] / d."""
    ax = _axis(n_in, n_out)
    return _grid_matrix(ax)[:, ax.to_grid], ax.d


class _Plan(NamedTuple):
    """How events of one sensor are counted into frames of one size."""

    out: tuple[int, int]
    """Output (H, W)."""
    grid: tuple[int, int]
    """(H, W) of the grid events are counted on: the output where ``exact``."""
    rows: np.ndarray
    """Source row -> grid row (int64, read-only)."""
    cols: np.ndarray
    """Source column -> grid column (int64, read-only)."""
    resize: bool
    """Whether the grid differs from the sensor (the maps are not the identity)."""
    exact: bool
    """Integer ratios: the grid is the output, counts are exact integers."""
    y: _Axis
    x: _Axis

    @property
    def denom(self) -> int:
        """What the weighted grid sums are divided by: d_y * d_x."""
        return self.y.d * self.x.d


@functools.lru_cache(maxsize=64)
def _plan(sensor: tuple[int, int], out_hw: tuple[int, int]) -> _Plan:
    """The ``_Plan`` of a (width, height) sensor and an (H, W) output, made once per pair."""
    width, height = sensor
    y, x = _axis(height, out_hw[0]), _axis(width, out_hw[1])
    grid = (y.n_grid, x.n_grid)
    return _Plan(out_hw, grid, y.to_grid, x.to_grid, grid != (height, width), grid == out_hw, y, x)


def _reduce(counts: np.ndarray, plan: _Plan) -> np.ndarray:
    """Grid counts (..., *plan.grid) -> float32 frames (..., *plan.out): exact numerator sums
    (float64 matrix products of integers), then one division by ``plan.denom``, rounded once."""
    sums = _weighted_sum(_grid_matrix(plan.y), counts, _grid_matrix(plan.x))
    sums /= float(plan.denom)
    return sums.astype(np.float32)


def _weighted_sum(ay: np.ndarray, frames: np.ndarray, ax: np.ndarray) -> np.ndarray:
    """``ay @ frames @ ax.T`` over the last two axes in float64, as one 2-D and one 3-D product
    (numpy's matmul of a 2-D matrix with a 4-D stack runs ~40x slower)."""
    *lead, height, width = frames.shape
    rows = frames.reshape(-1, width).astype(np.float64, copy=False) @ ax.T
    sums = ay @ rows.reshape(-1, height, ax.shape[0])
    return sums.reshape(*lead, ay.shape[0], ax.shape[0])


def _pixel_index(
    events: np.ndarray,
    sensor: tuple[int, int],
    plan: _Plan,
    check: bool = True,
    fields: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Flat (polarity, y, x) index ((p * H_g + y') * W_g + x') of every event in one
    (2, H_g, W_g) plane pair of the counting grid ``plan.grid``; ``check``: refuse events outside
    the sensor or p not in {0, 1}.

    ``fields``: x, y, p already as contiguous intp arrays (modified in place), else each field
    of ``events`` is converted once. Bounds are checked on the contiguous arrays.
    """
    width, height = sensor
    h_grid, w_grid = plan.grid
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
    if plan.resize:
        y = plan.rows[y]
        x = plan.cols[x]
    p *= h_grid
    p += y
    p *= w_grid
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


def _count_events_py(ev, T, by_count, width, height, rows, cols, resize, w_grid, plane_grid, out,
                     mid, take_y, weight_y, x_cells, x_first, x_next, d_x, denom):
    """Kernel source (compiled by numba): count each event in its (bin, p, y', x') grid cell.

    ``ev``: the structured events (records read in place, any integer field types); ``rows`` /
    ``cols``: the ``_Plan`` maps onto the counting grid (if ``resize``), ``w_grid`` wide with
    ``plane_grid`` cells per polarity. ``mid`` empty (integer ratios): counts go straight into
    ``out``, flat (T * 2 * plane_grid). Else they go into ``mid`` (2 * plane_grid; all T bins'
    planes for unsorted times), whose planes are then summed into the float32 ``out``
    (T * 2 * H * W) with the ``_kernel_tables`` weights, in ``mid``'s dtype: every partial sum
    is an integer that dtype holds exactly, divided once by ``denom`` (rounded once).
    Every cell of ``out`` is written.
    One pass takes the ranges of x, y, p and t and checks that t is sorted; the bins are those
    of the numpy path: by count, event j is in bin i iff j >= ceil(i * n / T); by time, iff
    t_j >= t_min + ceil(i * span / T) (the last bin closed; span 0: all in bin 0). Sorted
    events are counted bin by bin (bin ends by bisection) into that bin's planes, zeroed just
    before (so they are in cache); unsorted ones by a search per event.
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
                    mid_j = (lo + hi) >> 1
                    if np.int64(ev[mid_j].t) < thr[i]:
                        lo = mid_j + 1
                    else:
                        hi = mid_j
                stops[i] = lo
    plane = 2 * plane_grid
    reduce = mid.shape[0] > 0
    if not reduce and sorted_t:  # bin by bin: zero the bin's planes, then count into them
        j = 0
        for b in range(T):
            stop = stops[b]
            base = b * plane
            out[base : base + plane] = 0
            if resize:
                while j < stop:
                    out[base + np.int64(ev[j].p) * plane_grid + rows[np.int64(ev[j].y)] * w_grid
                        + cols[np.int64(ev[j].x)]] += 1
                    j += 1
            else:
                while j < stop:
                    out[base + np.int64(ev[j].p) * plane_grid + np.int64(ev[j].y) * w_grid
                        + np.int64(ev[j].x)] += 1
                    j += 1
        return 0
    if not reduce:
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
            out[(2 * b + np.int64(ev[j].p)) * plane_grid + yi * w_grid + xi] += 1
        return 0
    # fractional ratios: count on the grid, then sum its planes into out's
    if not sorted_t:  # every bin's planes are needed at once
        mid = np.zeros(T * plane, mid.dtype)
        for j in range(n):
            v = np.int64(ev[j].t)
            b = 0
            while b < nthr and v >= thr[b]:
                b += 1
            mid[(2 * b + np.int64(ev[j].p)) * plane_grid + rows[np.int64(ev[j].y)] * w_grid
                + cols[np.int64(ev[j].x)]] += 1
    h_out = take_y.shape[1]
    n_strad = x_cells.shape[0]
    w_out = w_grid - n_strad
    plane_out = h_out * w_out
    row = np.empty(w_grid, mid.dtype)
    left = np.zeros(w_out, mid.dtype)  # left[c]: share of the straddler left of cell c, else 0
    right = np.zeros(w_out, mid.dtype)  # right[c]: that of the straddler right of c, else 0
    j = 0
    for b in range(T):
        m_base = b * plane
        if sorted_t:
            m_base = 0
            stop = stops[b]
            mid[:plane] = 0
            while j < stop:
                mid[np.int64(ev[j].p) * plane_grid + rows[np.int64(ev[j].y)] * w_grid
                    + cols[np.int64(ev[j].x)]] += 1
                j += 1
        for p in range(2):
            m0 = m_base + p * plane_grid
            o0 = (2 * b + p) * plane_out
            for r in range(h_out):  # rows: the grid rows of output row r, weighted, summed
                a = m0 + take_y[0, r] * w_grid
                g_own = mid[a : a + w_grid]
                a = m0 + take_y[1, r] * w_grid
                g_up = mid[a : a + w_grid]
                a = m0 + take_y[2, r] * w_grid
                g_down = mid[a : a + w_grid]
                k_own, k_up, k_down = weight_y[0, r], weight_y[1, r], weight_y[2, r]
                for c in range(w_grid):
                    row[c] = k_own * g_own[c] + k_up * g_up[c] + k_down * g_down[c]
                dst = out[o0 + r * w_out : o0 + (r + 1) * w_out]
                if n_strad == 0:  # integer ratio along x
                    for c in range(w_out):
                        dst[c] = row[c] / denom
                    continue
                for s in range(n_strad):  # columns: plain stores, no dependency chains
                    v = row[w_out + s]
                    c = x_cells[s]
                    right[c] = x_first[s] * v
                    left[c + 1] = x_next[s] * v
                for c in range(w_out):
                    dst[c] = (d_x * row[c] + left[c] + right[c]) / denom
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
def _kernel_tables(sensor: tuple[int, int], out_hw: tuple[int, int], dtype: type) -> tuple:
    """The kernel's weight arguments for ``_plan(sensor, out_hw)`` (read-only), arithmetic in
    ``dtype`` (made once per plan and dtype).

    Rows: output row r sums grid rows take[0, r] (own), take[1, r] (straddler above),
    take[2, r] (straddler below) with weights weight[:, r] (0 where there is none). Columns:
    each straddler's cell, its shares of that cell and the next; then d_x and the denominator.
    """
    plan = _plan(sensor, out_hw)
    y, x = plan.y, plan.x
    take = np.repeat(np.arange(y.n_out, dtype=np.int64)[None], 3, axis=0)
    weight = np.zeros((3, y.n_out), dtype=dtype)
    weight[0] = y.d
    slots = np.arange(y.n_out, y.n_grid)
    take[1, y.cells + 1], weight[1, y.cells + 1] = slots, y.d - y.first
    take[2, y.cells], weight[2, y.cells] = slots, y.first
    tables = (take, weight, x.cells, x.first.astype(dtype), (x.d - x.first).astype(dtype))
    for a in tables:
        a.flags.writeable = False
    return (*tables, dtype(x.d), dtype(plan.denom))


_NO_TABLES = _kernel_tables((1, 1), (1, 1), np.float32)
"""Weight arguments of exact plans (unused by the kernel)."""
_NO_MID = np.zeros(0, dtype=np.float32)
"""``mid`` of exact plans: empty, never written."""


def _count_kernel(
    kernel,
    events: np.ndarray,
    sensor: tuple[int, int],
    plan: _Plan,
    T: int,
    by_count: bool,
    out: np.ndarray,
) -> bool:
    """Count ``events`` (non-empty) into the flat ``out`` with the kernel (every cell written):
    exact counts (float32 or int64) where ``plan.exact``, else float32 area sums.

    False (nothing counted) where the kernel cannot: a time span that could overflow.
    """
    width, height = sensor
    h_grid, w_grid = plan.grid
    plane_grid = h_grid * w_grid
    if plan.exact:
        mid, tables = _NO_MID, _NO_TABLES
    else:  # every weighted sum is an integer <= n * denom: exact in float32 below 2**24
        dtype = np.float32 if len(events) * plan.denom < _FLOAT_EXACT else np.float64
        mid, tables = np.empty(2 * plane_grid, dtype), _kernel_tables(sensor, plan.out, dtype)
    status = kernel(events, T, by_count, width, height, plan.rows, plan.cols, plan.resize,
                    w_grid, plane_grid, out, mid, *tables)
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
    sensor = (width, height)
    plan = _plan(sensor, (h_out, w_out))
    if validate:
        _check_fields(events)
    kernel = _kernel()
    if kernel is not None and _kernel_ok(events):
        exact_f32 = n < _FLOAT_EXACT or not plan.exact
        counts = np.empty(T * 2 * h_out * w_out, dtype=np.float32 if exact_f32 else np.int64)
        if _count_kernel(kernel, events, sensor, plan, T, binning == "count", counts):
            frames = counts.reshape(T, 2, h_out, w_out)
            return _normalise(frames.astype(np.float32, copy=False), norm, clip_max)
    counts = _grid_counts(events, sensor, plan, T, binning, validate)
    frames = counts.astype(np.float32, copy=False) if plan.exact else _reduce(counts, plan)
    return _normalise(frames, norm, clip_max)


def _grid_counts(
    events: np.ndarray,
    sensor: tuple[int, int],
    plan: _Plan,
    T: int,
    binning: str,
    validate: bool,
) -> np.ndarray:
    """Exact counts (T, 2, *plan.grid) of non-empty ``events`` on the counting grid (numpy
    path): float32 for small recordings, int64 for large ones (exact at any size)."""
    n = len(events)
    h_grid, w_grid = plan.grid
    plane = 2 * h_grid * w_grid
    if binning == "count":
        edges = _count_edges(n, T)
    else:
        edges = _time_edges(np.ascontiguousarray(events["t"]), T)
    if edges is None:  # unsorted timestamps: bin every event arithmetically
        return _counts_unsorted(events, sensor, plan, T, validate)
    if n < _PER_BIN_MIN_EVENTS:
        idx = _pixel_index(events, sensor, plan, validate)
        idx += np.repeat(np.arange(0, T * plane, plane, dtype=np.intp), np.diff(edges))
        counts = np.zeros(T * plane, dtype=np.float32)
        _count_into(counts, idx)
        return counts.reshape(T, 2, h_grid, w_grid)
    counts = np.zeros((T, plane), dtype=np.int64)
    for i in range(T):
        for start in range(int(edges[i]), int(edges[i + 1]), _CHUNK):
            chunk = events[start : min(start + _CHUNK, int(edges[i + 1]))]
            idx = _pixel_index(chunk, sensor, plan, validate)
            counts[i] += np.bincount(idx, minlength=plane)
    return counts.reshape(T, 2, h_grid, w_grid)


def _counts_unsorted(
    events: np.ndarray,
    sensor: tuple[int, int],
    plan: _Plan,
    T: int,
    validate: bool = True,
) -> np.ndarray:
    """Time-binned int64 grid counts of events whose timestamps are not sorted (chunked,
    arithmetic bins)."""
    h_grid, w_grid = plan.grid
    plane = 2 * h_grid * w_grid
    t = events["t"]
    t0 = int(t.min())
    span = int(t.max()) - t0
    counts = np.zeros(T * plane, dtype=np.int64)
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        idx = _pixel_index(chunk, sensor, plan, validate)
        if span > 0:
            b = chunk["t"].astype(np.int64)
            b -= t0
            b *= T
            b //= span
            np.minimum(b, T - 1, out=b)
            b *= plane
            idx += b
        counts += np.bincount(idx, minlength=T * plane)
    return counts.reshape(T, 2, h_grid, w_grid)


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

    With numba: one kernel call per recording, straight into its row. Without: recordings
    sharing one dtype are concatenated (in groups of at most ``_MANY_EVENTS`` events and
    ``_MANY_BINS`` counting-grid bins) and counted with a handful of vectorised calls:
    per-recording bin edges from one ``np.searchsorted``, one flat index
    ``((r * T + bin) * 2 + p) * H_g * W_g + y' * W_g + x'`` and one ``np.add.at`` (then, at
    non-integer ratios, the area sums of the group). ``out``: a C-contiguous float32 array of
    that shape to fill (zeroed first) instead of a new one.
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
    sensor = (width, height)
    plan = _plan(sensor, (h_out, w_out))
    if kernel is not None:  # one kernel call per recording, straight into its row
        flat = out.reshape(len(recordings), T * 2 * h_out * w_out)
        by_count = binning == "count"
        for r, ev in enumerate(recordings):
            if len(ev) == 0:
                flat[r] = 0
                continue
            if validate:
                _check_fields(ev)
            if not (
                (len(ev) < _FLOAT_EXACT or not plan.exact)
                and _kernel_ok(ev)
                and _count_kernel(kernel, ev, sensor, plan, T, by_count, flat[r])
            ):
                out[r] = events_to_frames(ev, sensor, T, **kw)
        return _normalise(out, norm, clip_max)
    per_rec = T * 2 * plan.grid[0] * plan.grid[1]  # cells counted per recording
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
            _count_group(recordings, group, out, sensor, plan, T, binning, validate)
            group, n_group = [], 0
        if alone:  # one large recording: the single-recording path bounds its own memory
            out[r] = events_to_frames(ev, sensor, T, **kw)
            continue
        if not group:
            dtype = ev.dtype
        group.append(r)
        n_group += n
    if group:
        _count_group(recordings, group, out, sensor, plan, T, binning, validate)
    return _normalise(out, norm, clip_max)


def _count_group(
    recordings: Sequence[np.ndarray],
    group: list[int],
    out: np.ndarray,
    sensor: tuple[int, int],
    plan: _Plan,
    T: int,
    binning: str,
    validate: bool,
) -> None:
    """Frames of ``recordings[group]`` (consecutive rows, one dtype) into the zeroed rows of
    ``out``: counted straight into them (integer ratios) or on the grid, then summed."""
    rows = out[group[0] : group[-1] + 1]
    if plan.exact:
        _count_many(recordings, group, rows, sensor, plan, T, binning, validate)
        return
    grid = np.zeros((len(group), T, 2, *plan.grid), dtype=np.float32)
    _count_many(recordings, group, grid, sensor, plan, T, binning, validate)
    rows[...] = _reduce(grid, plan)


def _count_many(
    recordings: Sequence[np.ndarray],
    group: list[int],
    dest: np.ndarray,
    sensor: tuple[int, int],
    plan: _Plan,
    T: int,
    binning: str,
    validate: bool,
) -> None:
    """Add the grid counts of ``recordings[group]`` (one dtype, fewer than 2**24 events each)
    to the zeroed float32 ``dest`` (len(group), T, 2, *plan.grid).

    Each field is concatenated once (cast to intp / int64 on the way). Each recording's bins
    are a contiguous run of its events (sorted timestamps or count bins), found for all
    recordings with one ``np.searchsorted`` on a key that stacks the recordings in time;
    unsorted recordings are counted one at a time.
    """
    plane = 2 * plan.grid[0] * plan.grid[1]
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
        idx = _pixel_index(first, sensor, plan, validate, fields)
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
            for k, ev in enumerate(parts):
                if len(ev):
                    dest[k] = _grid_counts(ev, sensor, plan, T, "time", False)
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
    _count_into(dest.reshape(-1), idx)


def _group_starts(n_in: int, n_out: int) -> np.ndarray:
    """First source index of each target cell under the map i -> floor(i * n_out / n_in)."""
    target = np.arange(n_in, dtype=np.int64) * n_out // n_in
    return np.searchsorted(target, np.arange(n_out, dtype=np.int64))


def downsample_sum(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Sum frames (..., H, W) over areas down to ``size`` (H, W); totals are conserved.

    The same area weights ``events_to_frames`` applies to events, so count frames give
    identical results either way. Integer ratios: block sums in the input dtype; others:
    float64 sums of the weighted pixels, returned as float64 for float64 input, else float32.
    """
    frames = np.asarray(frames)
    if frames.ndim < 2:
        raise ValueError(f"frames must have at least 2 dimensions (..., H, W); got {frames.shape}")
    height, width = frames.shape[-2:]
    h_out, w_out = frame_size(size, (width, height))
    if height % h_out or width % w_out:  # a pixel straddles cells: weighted sums
        ay, dy = _area_matrix(height, h_out)
        ax, dx = _area_matrix(width, w_out)
        sums = _weighted_sum(ay, frames, ax)
        sums /= float(dy * dx)
        return sums.astype(np.float64 if frames.dtype == np.float64 else np.float32)
    out = frames
    if w_out != width:
        out = np.add.reduceat(out, _group_starts(width, w_out), axis=-1)
    if h_out != height:
        out = np.add.reduceat(out, _group_starts(height, h_out), axis=-2)
    return out if out is not frames else frames.copy()
