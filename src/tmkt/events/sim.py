"""Event-camera simulator: a static image moved in front of a DVS/ATIS pixel array -> events.

Reproduces how N-MNIST / N-Caltech101 (sensor on a pan-tilt, 3 saccades of ~100 ms in front of
an LCD) and CIFAR10-DVS (image moved on a monitor, DVS128) were recorded. Each pixel keeps a
reference log intensity and emits ON/OFF events when the log intensity moves a (per-pixel,
mismatched) contrast threshold away from it; after an event the pixel is blind for a refractory
period, during which its reference follows the input. Optional background noise and hot pixels.
The picture is centred on the sensor or anchored at its top-left corner (`anchor`); around it
the display repeats its edge pixels or shows a uniform screen (`surround`).
Vectorised over time steps and over a batch of images; seeded per image (numpy Generator).
See docs/simulator.md for the model, the defaults and their validation on real N-MNIST.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tmkt.events.formats.base import EVENT_DTYPE

MODES = ("saccade", "monitor")
ANCHORS = ("center", "top_left")
SURROUNDS = ("edge", "constant")
LUMA = np.array([0.299, 0.587, 0.114])

# N-MNIST saccade triangle (image displacement in sensor pixels, relative to the centred
# placement), fitted to the real recordings in shared/data (see docs/simulator.md).
NMNIST_PATH = ((-2.5, -2.25), (-1.0, 3.25), (2.5, -1.75))
# [ours] CIFAR10-DVS-like closed loop on the monitor (square, 4 moves).
MONITOR_PATH = ((-4.0, -4.0), (4.0, -4.0), (4.0, 4.0), (-4.0, 4.0))


@dataclass(frozen=True)
class SimParams:
    """Simulator settings; defaults reproduce N-MNIST (validated in docs/simulator.md).

    Positions are in sensor pixels; times in microseconds; thresholds in log-intensity units.
    """

    mode: str = "saccade"  # "saccade": smooth sensor moves; "monitor": motion stepped at refresh
    sensor_size: tuple[int, int] = (34, 34)  # (width, height)
    image_size: tuple[int, int] | None = (28, 28)  # (height, width) on the sensor; None = fit
    duration_us: int = 306_000
    path: tuple[tuple[float, float], ...] = NMNIST_PATH  # vertices (dx, dy), visited in a loop
    n_saccades: int = 3  # moves along the path (one per vertex -> next vertex)
    amplitude: float = 1.0  # scales the path
    move_start: float = 0.06  # each move starts this fraction into its segment ...
    move_end: float = 0.82  # ... and ends here (raised-cosine velocity profile)
    refresh_hz: float = 60.0  # monitor mode: the image position changes only at refreshes
    dt_us: int = 5000  # longest simulation time step (timestamps are interpolated within it)
    step_px: float = 0.5  # most the image moves within one step (shorter steps where fast)
    threshold_on: float = 0.25
    threshold_off: float = 0.25
    threshold_sigma: float = 0.03  # pixel-to-pixel mismatch (absolute, Gaussian)
    threshold_min: float = 0.01
    refractory_us: int = 1500
    eps: float = 0.1  # log(I + eps): display black level / dark current, I in [0, 1]
    invert: bool = True  # the display shows the negative image (fitted on real N-MNIST)
    swap_polarity: bool = False  # report ON as OFF and vice versa
    random_reference: bool = True  # initial reference levels drawn within the dead band
    noise_rate_hz: float = 0.0  # background activity per pixel (random polarity)
    hot_pixel_fraction: float = 0.0
    hot_pixel_rate_hz: float = 1000.0
    # where the picture sits: "center" (centred on the sensor, the path's displacements around
    # it) or "top_left" (its top-left corner at the sensor origin at the saccade start, i.e. at
    # the path's first vertex; N-Caltech101's recordings start at x = y = 0)
    anchor: str = "center"
    # what the display shows around the picture: "edge" (the picture's edge pixels repeated
    # outward: a border-free picture, no events outside it) or "constant" (a uniform screen of
    # intensity `surround_value`, as a picture shown on a monitor: events only from the
    # picture and its border)
    surround: str = "edge"
    surround_value: float = 0.5  # "constant": the displayed intensity in [0, 1] (not inverted)

    def __post_init__(self) -> None:
        check_params(self)

    def replace(self, **changes: object) -> SimParams:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dict (tuples as lists)."""
        return json_ready(dataclasses.asdict(self))


def json_ready(v: object) -> object:
    """Tuples -> lists, recursively."""
    if isinstance(v, dict):
        return {k: json_ready(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [json_ready(x) for x in v]
    return v


def check_params(p: SimParams) -> None:
    """Raise ValueError naming the first invalid field."""
    if p.mode not in MODES:
        raise ValueError(f"SimParams.mode must be one of {MODES}, got {p.mode!r}")
    if p.anchor not in ANCHORS:
        raise ValueError(f"SimParams.anchor must be one of {ANCHORS}, got {p.anchor!r}")
    if p.surround not in SURROUNDS:
        raise ValueError(f"SimParams.surround must be one of {SURROUNDS}, got {p.surround!r}")
    v = p.surround_value
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        raise ValueError(f"SimParams.surround_value must be a number in [0, 1], got {v!r}")
    if len(p.sensor_size) != 2 or min(p.sensor_size) < 1:
        raise ValueError(f"SimParams.sensor_size must be (width, height) >= 1, got {p.sensor_size}")
    if p.image_size is not None and (len(p.image_size) != 2 or min(p.image_size) < 1):
        raise ValueError("SimParams.image_size must be (height, width) >= 1 or None")
    positive = ("duration_us", "dt_us", "step_px", "n_saccades", "threshold_min", "refresh_hz")
    for name in positive:
        if not getattr(p, name) > 0:
            raise ValueError(f"SimParams.{name} must be > 0, got {getattr(p, name)}")
    for name in ("threshold_on", "threshold_off"):
        if not getattr(p, name) >= p.threshold_min:
            raise ValueError(f"SimParams.{name} must be >= threshold_min ({p.threshold_min})")
    nonneg = ("threshold_sigma", "refractory_us", "noise_rate_hz", "hot_pixel_rate_hz", "eps")
    for name in nonneg:
        if not getattr(p, name) >= 0:
            raise ValueError(f"SimParams.{name} must be >= 0, got {getattr(p, name)}")
    if p.eps == 0:
        raise ValueError("SimParams.eps must be > 0 (log of a black pixel)")
    if not 0 <= p.hot_pixel_fraction <= 1:
        raise ValueError("SimParams.hot_pixel_fraction must be in [0, 1]")
    if not 0 <= p.move_start < p.move_end <= 1:
        raise ValueError("SimParams needs 0 <= move_start < move_end <= 1")
    if len(p.path) < 1 or any(len(v) != 2 for v in p.path):
        raise ValueError("SimParams.path must be a sequence of (dx, dy) vertices")


PRESETS: dict[str, SimParams] = {
    "nmnist": SimParams(),
    # N-Caltech101: 240x180 sensor, N-MNIST's saccades (same rig: amplitude 1), the picture in
    # the top-left corner on a mid-grey screen; surround, threshold and timing fitted to the one
    # real recording in shared/data (docs/simulator.md, "N-Caltech101 preset vs a real
    # recording"; bench/fit_ncaltech101_preset.py)
    "ncaltech101": SimParams(
        sensor_size=(240, 180),
        image_size=None,
        amplitude=1.0,
        move_start=0.15,
        move_end=0.85,
        threshold_on=0.153,
        threshold_off=0.153,
        invert=False,
        anchor="top_left",
        surround="constant",
        surround_value=0.5,
    ),
    # [ours, not validated] CIFAR10-DVS: DVS128, image moved on a 60 Hz monitor along a loop.
    "cifar10dvs": SimParams(
        mode="monitor",
        sensor_size=(128, 128),
        image_size=None,
        duration_us=1_200_000,
        path=MONITOR_PATH,
        n_saccades=4,
        move_start=0.0,
        move_end=1.0,
        amplitude=1.0,
        invert=False,
    ),
}


def preset(name: str, **changes: object) -> SimParams:
    """Named parameter set ("nmnist", "ncaltech101", "cifar10dvs") with optional changes."""
    if name not in PRESETS:
        raise ValueError(f"unknown simulator preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**changes)


# ---------------------------------------------------------------------------- input images


def to_intensity(image: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Any 2-D image (HxW, HxWx1/3/4; bool, int, float) -> float64 HxW luminance in [0, 1].

    Scaling: bool -> {0, 1}; unsigned ints by their dtype's maximum; signed ints must lie in
    [0, 255]; floats must be finite and >= 0, taken as [0, 1] if max <= 1 else as [0, 255]
    (> 255 is refused). ``value_range=(lo, hi)`` overrides this and clips. RGB -> Rec.601
    luma; RGBA is composited onto black. 4-D arrays (batches) are refused.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        pass
    elif arr.ndim != 2:
        raise ValueError(
            f"image must be HxW or HxWxC with C in (1, 3, 4); got shape {arr.shape} "
            "(use simulate_batch for a stack of images)"
        )
    if arr.size == 0 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image is empty: shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"image dtype must be bool, integer or float; got {arr.dtype}")
    x = arr.astype(np.float64)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise ValueError("image holds NaN or inf values")
    if value_range is not None:
        lo, hi = float(value_range[0]), float(value_range[1])
        if not hi > lo:
            raise ValueError(f"value_range must be (lo, hi) with hi > lo, got {value_range}")
        x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    elif arr.dtype.kind == "b":
        pass
    elif arr.dtype.kind == "u":
        x /= float(np.iinfo(arr.dtype).max)
    else:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0:
            raise ValueError(
                f"image holds negative values (min {lo}); pass value_range=(lo, hi) to rescale"
            )
        if arr.dtype.kind == "i" and hi > 255:
            raise ValueError(f"a signed-integer image must lie in [0, 255], got max {hi}")
        if hi > 255:
            raise ValueError(
                f"a float image must lie in [0, 1] or [0, 255], got max {hi}; "
                "pass value_range=(lo, hi) to rescale"
            )
        if arr.dtype.kind == "i" or hi > 1.0:
            x /= 255.0
    if x.ndim == 3:
        c = x.shape[2]
        if c == 1:
            x = x[:, :, 0]
        else:
            gray = x[:, :, :3] @ LUMA if c >= 3 else x[:, :, 0]
            x = gray * x[:, :, 3] if c == 4 else gray
    return np.clip(x, 0.0, 1.0)


def fit_size(shape: tuple[int, int], p: SimParams) -> tuple[int, int]:
    """(height, width) of the image on the sensor: p.image_size, else the largest that fits
    inside the sensor less the path's extent, keeping the aspect ratio."""
    if p.image_size is not None:
        return int(p.image_size[0]), int(p.image_size[1])
    path = np.asarray(p.path, dtype=float) * p.amplitude
    span = path.max(0) - path.min(0)  # (dx, dy)
    avail_w = max(1.0, p.sensor_size[0] - span[0] - 2)
    avail_h = max(1.0, p.sensor_size[1] - span[1] - 2)
    s = min(avail_w / shape[1], avail_h / shape[0])
    return max(1, round(shape[0] * s)), max(1, round(shape[1] * s))


def place(image: np.ndarray, p: SimParams, value_range: tuple[float, float] | None = None):
    """Intensity image resized to its on-sensor size (Pillow bilinear, area-averaging)."""
    x = to_intensity(image, value_range)
    h, w = fit_size(x.shape, p)
    if x.shape != (h, w):
        pil = Image.fromarray(x.astype(np.float32), mode="F")
        x = np.asarray(pil.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float64)
        x = np.clip(x, 0.0, 1.0)
    return 1.0 - x if p.invert else x


# ---------------------------------------------------------------------------- trajectory


def trajectory(p: SimParams, t_us: np.ndarray) -> np.ndarray:
    """Image displacement (dx, dy) in pixels at times ``t_us``: shape (len(t), 2)."""
    t = np.asarray(t_us, dtype=np.float64)
    if p.mode == "monitor":  # position held between monitor refreshes
        frame = 1e6 / p.refresh_hz
        t = np.floor(t / frame) * frame
    verts = np.asarray(p.path, dtype=np.float64) * p.amplitude
    seg = p.duration_us / p.n_saccades
    k = np.clip(np.floor(t / seg).astype(int), 0, p.n_saccades - 1)
    u = (t - k * seg) / seg
    u = np.clip((u - p.move_start) / (p.move_end - p.move_start), 0.0, 1.0)
    if p.mode == "saccade":
        u = 0.5 - 0.5 * np.cos(np.pi * u)  # bell-shaped velocity
    a = verts[k % len(verts)]
    b = verts[(k + 1) % len(verts)]
    return a + (b - a) * u[:, None]


def time_grid(p: SimParams) -> np.ndarray:
    """Step boundaries (µs): at most dt_us apart, and the image moves at most step_px (per
    axis) within a step; instantaneous jumps (monitor refreshes) get a 50 µs step."""
    fine_dt = 50.0
    fine = np.minimum(np.arange(0.0, p.duration_us + fine_dt, fine_dt), float(p.duration_us))
    fine = np.unique(fine)
    pos = trajectory(p, fine)
    step = np.abs(np.diff(pos, axis=0)).max(1)
    cells = np.floor(np.concatenate([[0.0], np.cumsum(step)]) / p.step_px)
    breaks = fine[1:][np.diff(cells) > 0]
    jumps = fine[:-1][step > p.step_px]  # a jump gets its own short step
    regular = np.arange(0.0, float(p.duration_us), float(p.dt_us))
    return np.unique(np.concatenate([regular, breaks, jumps, [float(p.duration_us)]]))


# ---------------------------------------------------------------------------- engine


class _Canvas:
    """Images padded so that bilinear shifts by any trajectory offset are plain slices."""

    def __init__(self, imgs: list[np.ndarray], p: SimParams, offsets: np.ndarray) -> None:
        ws, hs = p.sensor_size
        self.ws, self.hs = ws, hs
        # top-left of each image in sensor coordinates = placement + displacement
        if p.anchor == "top_left":  # at the origin at the saccade start (the first vertex)
            start = -np.asarray(p.path[0], dtype=np.float64) * p.amplitude
            base = np.repeat(start[None], len(imgs), axis=0)
        else:
            base = np.array([((ws - im.shape[1]) / 2.0, (hs - im.shape[0]) / 2.0) for im in imgs])
        lo = offsets.min(0) + base.min(0)
        hi = offsets.max(0) + base.max(0)
        self.kx = int(np.ceil(max(0.0, hi[0]))) + 2
        self.ky = int(np.ceil(max(0.0, hi[1]))) + 2
        hmax = max(im.shape[0] for im in imgs)
        wmax = max(im.shape[1] for im in imgs)
        width = self.kx + max(ws, wmax) + int(np.ceil(max(0.0, -lo[0]))) + 3
        height = self.ky + max(hs, hmax) + int(np.ceil(max(0.0, -lo[1]))) + 3
        # outside the image the display repeats the image's edge (no event from the border)
        # or shows a uniform surround (events where the picture's border passes)
        self.data = np.empty((len(imgs), height, width), dtype=np.float32)
        for i, im in enumerate(imgs):
            pad = (
                (self.ky, height - self.ky - im.shape[0]),
                (self.kx, width - self.kx - im.shape[1]),
            )
            if p.surround == "constant":
                self.data[i] = np.pad(im, pad, constant_values=float(p.surround_value))
            else:
                self.data[i] = np.pad(im, pad, mode="edge")
        # images sharing a placement are rendered together
        self.groups: list[tuple[np.ndarray, np.ndarray]] = []
        keys = [tuple(b) for b in base]
        for key in dict.fromkeys(keys):
            members = np.array([i for i, k in enumerate(keys) if k == key])
            self.groups.append((members, np.array(key)))

    def render(self, d: np.ndarray) -> np.ndarray:
        """Sensor images (N, hs, ws), float32, for a displacement d = (dx, dy)."""
        if len(self.groups) == 1:
            return self._render(self.data, d + self.groups[0][1])
        out = np.empty((len(self.data), self.hs, self.ws), dtype=np.float32)
        for members, base in self.groups:
            out[members] = self._render(self.data[members], d + base)
        return out

    def _render(self, q: np.ndarray, o: np.ndarray) -> np.ndarray:
        # sensor pixel x samples image column x - o_x = canvas column x + kx - o_x (bilinear)
        ix, iy = int(np.floor(o[0])), int(np.floor(o[1]))
        fx, fy = np.float32(o[0] - ix), np.float32(o[1] - iy)
        c0, r0 = self.kx - ix, self.ky - iy
        hs, ws = self.hs, self.ws

        def row(r: int) -> np.ndarray:
            a = q[:, r : r + hs, c0 : c0 + ws]
            if not fx:
                return a.copy()
            out = q[:, r : r + hs, c0 - 1 : c0 - 1 + ws] - a
            out *= fx
            out += a
            return out

        top = row(r0)
        if not fy:
            return top
        bot = row(r0 - 1)
        bot -= top
        bot *= fy
        bot += top
        return bot


def _draw_pixels(rng: np.random.Generator, p: SimParams, shape: tuple[int, int]):
    """Per-pixel thresholds (ON, OFF) and initial offsets reference - level in (-C_on, C_off]."""
    c_on = p.threshold_on + p.threshold_sigma * rng.standard_normal(shape)
    c_off = p.threshold_off + p.threshold_sigma * rng.standard_normal(shape)
    c_on = np.maximum(c_on, p.threshold_min)
    c_off = np.maximum(c_off, p.threshold_min)
    if p.random_reference:
        # reference - level in (-C_on, C_off): no pixel starts beyond a threshold
        u = rng.random(shape) * (1 - 1e-9)
        off = c_off - u * (c_on + c_off)
    else:
        off = np.zeros(shape)
    return c_on, c_off, off


def _noise(rng: np.random.Generator, p: SimParams) -> np.ndarray:
    """Background-activity and hot-pixel events (unsorted EVENT_DTYPE array)."""
    ws, hs = p.sensor_size
    npix = ws * hs
    dur = p.duration_us
    parts = []
    n = rng.poisson(p.noise_rate_hz * dur * 1e-6 * npix) if p.noise_rate_hz > 0 else 0
    if n:
        pix = rng.integers(0, npix, n)
        parts.append((rng.integers(0, dur, n), pix, rng.integers(0, 2, n)))
    n_hot = int(round(p.hot_pixel_fraction * npix))
    if n_hot and p.hot_pixel_rate_hz > 0:
        hot = rng.choice(npix, n_hot, replace=False)
        pol = rng.integers(0, 2, n_hot)
        counts = rng.poisson(p.hot_pixel_rate_hz * dur * 1e-6, n_hot)
        parts.append(
            (rng.integers(0, dur, counts.sum()), np.repeat(hot, counts), np.repeat(pol, counts))
        )
    if not parts:
        return np.empty(0, dtype=EVENT_DTYPE)
    t = np.concatenate([q[0] for q in parts])
    pix = np.concatenate([q[1] for q in parts])
    ev = np.empty(len(t), dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"] = t, pix % ws, pix // ws
    ev["p"] = np.concatenate([q[2] for q in parts])
    return ev


def _as_seeds(seeds: int | Sequence[int] | None, n: int) -> list:
    if seeds is None or isinstance(seeds, int | np.integer):
        base = 0 if seeds is None else int(seeds)
        return [[base, i] for i in range(n)]
    seeds = list(seeds)
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} images")
    return seeds


def simulate_batch(
    images: Sequence[np.ndarray] | np.ndarray,
    params: SimParams | None = None,
    *,
    seeds: int | Sequence[int] | None = None,
    value_range: tuple[float, float] | None = None,
    chunk: int = 256,
) -> list[np.ndarray]:
    """Simulate many images at once (same result as one `simulate` call per image).

    ``seeds``: one seed per image (image i uses ``np.random.default_rng(seeds[i])``); an int s
    gives image i the seed ``[s, i]``. Returns one sorted EVENT_DTYPE array per image.
    Images are processed ``chunk`` at a time (arrays that fit in the CPU cache run faster).
    """
    p = params if params is not None else SimParams()
    if isinstance(images, np.ndarray) and images.ndim == 2:
        raise ValueError("simulate_batch takes a sequence of images; use simulate for one")
    imgs = [place(im, p, value_range) for im in images]
    seeds_ = _as_seeds(seeds, len(imgs))
    out: list[np.ndarray] = []
    step = max(1, int(chunk))
    for s in range(0, len(imgs), step):
        rngs = [np.random.default_rng(x) for x in seeds_[s : s + step]]
        out += _simulate_chunk(imgs[s : s + step], p, rngs)
    return out


def _simulate_chunk(imgs: list[np.ndarray], p: SimParams, rngs: list) -> list[np.ndarray]:
    """The engine: placed intensity images -> one sorted event array per image."""
    n = len(imgs)
    ws, hs = p.sensor_size
    times = time_grid(p)
    n_steps = len(times) - 1
    offsets = trajectory(p, times)
    canvas = _Canvas(imgs, p, offsets)

    pix = [_draw_pixels(r, p, (hs, ws)) for r in rngs]
    c_on = np.stack([q[0] for q in pix]).ravel().astype(np.float32)
    c_off = np.stack([q[1] for q in pix]).ravel().astype(np.float32)
    eps = np.float32(p.eps)
    state = _PixelState(canvas.render(offsets[0]).ravel(), c_on, c_off, eps)
    state.set_ref(
        np.arange(len(c_on)), state.log(state.prev) + np.stack([q[2] for q in pix]).ravel()
    )
    refr = float(p.refractory_us)
    out_idx: list[np.ndarray] = []
    out_t: list[np.ndarray] = []
    out_p: list[np.ndarray] = []
    for k in range(1, n_steps + 1):
        t0, t1 = times[k - 1], times[k]
        if t1 <= t0:
            break
        if np.array_equal(offsets[k], offsets[k - 1]):
            state.follow(state.prev, t0, t1)  # no motion, no event
            continue
        cur = canvas.render(offsets[k]).ravel()
        state.follow(cur, t0, t1)
        cand = np.flatnonzero((cur >= state.hi) | (cur <= state.lo))
        if len(cand):
            la, lb = state.log(state.prev[cand]), state.log(cur[cand])
            r = state.ref[cand].astype(np.float64)
            up = lb > r
            thr = np.where(up, c_on[cand], c_off[cand]).astype(np.float64)
            keep = np.abs(lb - r) >= thr  # exact test in the log domain
            if not keep.all():
                cand, la, lb, r, up, thr = (v[keep] for v in (cand, la, lb, r, up, thr))
            t_ev, m, (new_ref, new_until) = _crossings(
                la, lb, r, state.until[cand], up, thr, t0, t1, refr
            )
            state.until[cand] = new_until
            later = new_until >= t1
            state.blind(cand[later])
            state.set_ref(cand[~later], new_ref[~later])
            out_idx.append(np.repeat(cand, m))
            out_t.append(t_ev)
            out_p.append(np.repeat(up, m))
        state.prev = cur
    return _split_events(out_idx, out_t, out_p, n, p, rngs)


class _PixelState:
    """Per-pixel reference (log), its thresholds as intensities (no log per step), refractory.

    A pixel in its refractory period is "blind" (thresholds at +-inf); its reference is set
    when the period ends, to the input level at that moment (the reset follows the input).
    """

    def __init__(self, first: np.ndarray, c_on: np.ndarray, c_off: np.ndarray, eps) -> None:
        self.prev = first
        self.c_on, self.c_off, self.eps = c_on, c_off, eps
        self.ref = np.empty_like(first)
        self.hi = np.empty_like(first)
        self.lo = np.empty_like(first)
        self.until = np.full(first.shape, -np.inf)  # end of each pixel's refractory period
        self.busy = np.empty(0, dtype=np.int64)  # blind pixels

    def log(self, intensity: np.ndarray) -> np.ndarray:
        """Log intensity (float64) as the pixel sees it."""
        return np.log(intensity.astype(np.float64) + float(self.eps))

    def set_ref(self, idx: np.ndarray, ref: np.ndarray) -> None:
        """Set references; ON fires at intensity >= hi, OFF at <= lo."""
        ref = np.asarray(ref, dtype=np.float64)
        self.ref[idx] = ref
        self.hi[idx] = np.exp(ref + self.c_on[idx]) - self.eps
        self.lo[idx] = np.exp(ref - self.c_off[idx]) - self.eps

    def blind(self, idx: np.ndarray) -> None:
        """Pixels entering a refractory period that outlasts the current step."""
        self.hi[idx] = np.inf
        self.lo[idx] = -np.inf
        self.busy = np.concatenate([self.busy, idx])

    def follow(self, cur: np.ndarray, t0: float, t1: float) -> None:
        """Blind pixels whose refractory period ends before t1 see again: reference = the
        input (linearly interpolated over the step) at that moment."""
        if not len(self.busy):
            return
        u = self.until[self.busy]
        due = self.busy[u < t1]
        if len(due):
            s = np.clip((u[u < t1] - t0) / (t1 - t0), 0.0, 1.0)
            a, b = self.log(self.prev[due]), self.log(cur[due])
            self.set_ref(due, a + s * (b - a))
            self.busy = self.busy[u >= t1]


def _crossings(la, lb, ref, until, up, thr, t0: float, t1: float, refr: float):
    """Event times of pixels whose log intensity goes linearly la -> lb over [t0, t1] and
    crosses ref +- thr: events every (refractory + time per threshold) from the first crossing.
    Returns (times (sum m,), counts m, (new reference, new refractory end))."""
    la = la.astype(np.float64)
    lb = lb.astype(np.float64)
    ref = ref.astype(np.float64)
    sgn = np.where(up, 1.0, -1.0)
    slope = (lb - la) / (t1 - t0)  # log units per microsecond
    t_start = np.maximum(t0, until)
    l_start = la + (t_start - t0) * slope
    moving = np.abs(slope) > 1e-12
    safe = np.where(moving, slope, 1.0)
    t_first = np.where(moving, t_start + (ref + sgn * thr - l_start) / safe, t_start)
    t_first = np.clip(t_first, t_start, t1)
    tau = np.where(moving, thr / np.abs(safe), np.inf)
    period = refr + tau
    m = 1 + np.floor((t1 - t_first) / np.where(np.isfinite(period), period, np.inf))
    m = np.clip(np.nan_to_num(m, nan=1.0), 1, None).astype(np.int64)
    if refr == 0:  # no refractory: exactly one event per threshold crossed
        m = np.maximum(1, np.floor(np.abs(lb - ref) / thr).astype(np.int64))
        period = np.where(np.isfinite(tau), tau, 0.0)
    # a pixel with one event may have an infinite period (no motion): keep inf out of the
    # products (0 * inf is NaN); where m > 1 the period is finite and the values are unchanged
    period = np.where(m > 1, period, 0.0)
    t_last = t_first + (m - 1) * period
    new_until = t_last + refr
    if refr == 0:
        new_ref = ref + sgn * thr * m
    else:
        at = np.clip(new_until, t0, t1)
        new_ref = np.where(new_until >= t1, lb, la + (at - t0) * slope)
    reps = np.repeat(np.arange(len(m)), m)
    j = np.arange(len(reps)) - np.repeat(np.cumsum(m) - m, m)
    t_ev = t_first[reps] + j * period[reps]
    return t_ev, m, (new_ref, new_until)


def _split_events(out_idx, out_t, out_p, n: int, p: SimParams, rngs) -> list[np.ndarray]:
    ws, hs = p.sensor_size
    npix = ws * hs
    if out_idx:
        idx = np.concatenate(out_idx)
        t = np.concatenate(out_t)
        pol = np.concatenate(out_p)
    else:
        idx = np.empty(0, np.int64)
        t = np.empty(0)
        pol = np.empty(0, bool)
    img = idx // npix
    tq = np.minimum(np.round(t).astype(np.int64), p.duration_us - 1)
    key = tq * npix + idx % npix  # time, then pixel (y, x)
    # events come step by step: a stable (radix) sort by image leaves each image's events
    # nearly sorted, which the stable per-image sort (timsort) finishes quickly
    small = img.astype(np.uint16) if n <= np.iinfo(np.uint16).max else img
    order = np.argsort(small, kind="stable")
    img, key, pol = img[order], key[order], pol[order]
    bounds = np.searchsorted(img, np.arange(n + 1))
    noisy = p.noise_rate_hz > 0 or (p.hot_pixel_fraction > 0 and p.hot_pixel_rate_hz > 0)
    result = []
    for i in range(n):
        a, b = bounds[i], bounds[i + 1]
        o = np.argsort(key[a:b], kind="stable")
        k = key[a:b][o]
        ev = np.empty(b - a, dtype=EVENT_DTYPE)
        ev["t"] = k // npix
        ev["x"] = k % ws
        ev["y"] = (k % npix) // ws
        ev["p"] = pol[a:b][o] != p.swap_polarity
        if noisy:
            ev = np.concatenate([ev, _noise(rngs[i], p)])
            ev = ev[np.lexsort((ev["x"], ev["y"], ev["t"]))]
        result.append(ev)
    return result


def simulate(
    image: np.ndarray,
    params: SimParams | None = None,
    *,
    seed: int | Sequence[int] | None = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Simulate one recording of ``image``: sorted EVENT_DTYPE array (t in µs, p 1 = ON).

    A constant image gives no events (apart from background noise / hot pixels if enabled).
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"image must be HxW or HxWxC with C in (1, 3, 4); got shape {arr.shape} "
            "(use simulate_batch for a stack of images)"
        )
    return simulate_batch([arr], params, seeds=[seed], value_range=value_range)[0]
