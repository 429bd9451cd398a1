"""Frames: exact counts, tonic's ToFrame as oracle, area-summing downsampling, bad input."""

from __future__ import annotations

import functools
import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tonic.transforms

from tmkt.events.frames import downsample_sum, events_to_frames, events_to_frames_many
from tmkt.events.io import make_events, read_events


@pytest.fixture(autouse=True, params=["numba", "numpy"])
def backend(request):
    """Every test runs on both paths: the numba kernel and the numpy one (its oracle)."""
    import tmkt.events.frames as frames_mod

    was = frames_mod.use_numba(request.param == "numba")
    if request.param == "numba" and not frames_mod.numba_available():
        frames_mod.use_numba(was)
        pytest.skip("numba is not installed")
    yield request.param
    frames_mod.use_numba(was)


def test_kernel_equals_numpy_path(shared_data: Path, fixtures_dir: Path, backend) -> None:
    """The kernel's frames equal the numpy path's: real files, a long stream, awkward cases."""
    import tmkt.events.frames as frames_mod

    if backend != "numba":
        pytest.skip("compares the kernel with the numpy path")
    recs = [read_events(p).events for p in _nmnist_files(shared_data, 8)]
    big, big_sensor = read_events(fixtures_dir / "sample.aedat4")
    shuffled = recs[1][np.random.default_rng(2).permutation(len(recs[1]))]
    wide = make_events(np.array([0, 1 << 40, 1 << 61]), [0, 1, 2], [0, 0, 0], [1, 0, 1])
    cases = [(ev, (34, 34)) for ev in [*recs, shuffled, recs[0][::3], wide]]
    cases.append((big, big_sensor))
    for ev, sensor in cases:
        for T, size, binning in [(1, None, "time"), (10, None, "time"), (7, (17, 20), "count"),
                                 (5, (1, 1), "time"), (10, (13, 11), "time")]:
            kw = dict(size=size, binning=binning)
            got = events_to_frames(ev, sensor, T, **kw)
            many = events_to_frames_many([ev, ev[:5]], sensor, T, **kw)
            frames_mod.use_numba(False)
            ref = events_to_frames(ev, sensor, T, **kw)
            ref5 = events_to_frames(ev[:5], sensor, T, **kw)
            frames_mod.use_numba(True)
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_array_equal(many, np.stack([ref, ref5]))


def _nmnist_files(shared_data: Path, n: int) -> list[Path]:
    return sorted((shared_data / "N-MNIST").glob("Train/*/*.bin"))[:: 700 // n][:n]


def _tonic_time_frames(events: np.ndarray, sensor: tuple[int, int], T: int) -> np.ndarray:
    to_frame = tonic.transforms.ToFrame(sensor_size=(*sensor, 2), n_time_bins=T)
    return to_frame(events.copy())


def test_known_events_land_in_known_cells() -> None:
    # t = 0..99 over T = 4 bins of 25 us; channel 0 OFF, 1 ON; (x, y) -> [y, x]
    t = np.array([0, 10, 30, 60, 99])
    events = make_events(t, [1, 2, 0, 3, 4], [0, 1, 2, 2, 1], [1, 0, 1, 1, 0])
    frames = events_to_frames(events, (5, 3), 4)
    assert frames.shape == (4, 2, 3, 5) and frames.dtype == np.float32
    expected = np.zeros_like(frames)
    expected[0, 1, 0, 1] = 1
    expected[0, 0, 1, 2] = 1
    expected[1, 1, 2, 0] = 1
    expected[2, 1, 2, 3] = 1
    expected[3, 0, 1, 4] = 1  # the last event falls in the last (closed) bin
    np.testing.assert_array_equal(frames, expected)
    by_count = events_to_frames(events, (5, 3), 5, binning="count")
    assert [int(f.sum()) for f in by_count] == [1, 1, 1, 1, 1]
    assert by_count[4, 0, 1, 4] == 1


def test_time_bins_match_tonic_on_real_files(shared_data: Path, fixtures_dir: Path) -> None:
    """tonic floors the bin width and drops the tail; ours has exact edges and keeps it.

    With the tail cut at t0 + T * floor(span / T) and one marker event placed exactly there,
    both use the same edges; ours then equals tonic's frames plus the marker.
    """
    paths = [*_nmnist_files(shared_data, 20), fixtures_dir / "sample.aedat4"]
    for T in (1, 7, 10):
        for path in paths:
            events, sensor = read_events(path)
            ref = _tonic_time_frames(events, sensor, T)
            t0 = int(events["t"][0])
            end = t0 + T * ((int(events["t"][-1]) - t0) // T)
            kept = events[events["t"] < end]
            marker = make_events(np.array([end]), [0], [0], [0])
            ours = events_to_frames(np.concatenate([kept, marker]), sensor, T)
            ours[T - 1, 0, 0, 0] -= 1
            np.testing.assert_array_equal(ours, ref.astype(np.float32), err_msg=str(path))
            full = events_to_frames(events, sensor, T)
            assert full.sum() == len(events) > ref.sum()  # tonic drops the last event(s)


def test_count_bins_match_tonic(shared_data: Path) -> None:
    for path in _nmnist_files(shared_data, 10):
        events, sensor = read_events(path)
        T = 10
        ref = tonic.transforms.ToFrame(sensor_size=(*sensor, 2), n_event_bins=T)(events.copy())
        ours = events_to_frames(events[: len(events) // T * T], sensor, T, binning="count")
        np.testing.assert_array_equal(ours, ref.astype(np.float32))


@pytest.mark.parametrize("size", [None, 34, (17, 17), (20, 25), (33, 7), (1, 1)])
@pytest.mark.parametrize("binning", ["time", "count"])
def test_counts_conserved_exactly(shared_data: Path, size, binning: str) -> None:
    """Integer ratios: exact integer counts; others: fractional, the totals kept to rounding."""
    exact = size in (None, 34, (17, 17), (1, 1))
    for path in _nmnist_files(shared_data, 5):
        events, sensor = read_events(path)
        frames = events_to_frames(events, sensor, 10, size=size, binning=binning)
        on = frames[:, 1].sum(dtype=np.float64)
        if exact:
            assert np.array_equal(frames, np.round(frames))
            assert frames.sum() == len(events)
            assert on == np.count_nonzero(events["p"])
        else:
            assert not np.array_equal(frames, np.round(frames))
            assert frames.sum(dtype=np.float64) == pytest.approx(len(events), rel=1e-6)
            assert on == pytest.approx(np.count_nonzero(events["p"]), rel=1e-6)


@functools.lru_cache(maxsize=32)
def _overlap(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64: share of source pixel [x, x + 1), mapped to [x s, (x + 1) s) with
    s = n_out / n_in, that falls in target cell [c, c + 1) (exact fractions, then float64)."""
    s = Fraction(n_out, n_in)
    a = np.zeros((n_out, n_in))
    for x in range(n_in):
        lo, hi = x * s, (x + 1) * s
        for c in range(int(lo), min(n_out, int(hi) + 1)):
            a[c, x] = max(Fraction(0), min(hi, c + 1) - max(lo, Fraction(c))) / s
    return a


def _area_reference(full: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Full-resolution frames (..., H, W) summed over area to ``size`` in float64:
    Ay @ frames @ Ax.T with the 1-D overlap matrices."""
    *lead, height, width = full.shape
    cols = full.reshape(-1, width).astype(np.float64) @ _overlap(width, size[1]).T
    out = np.einsum("ih,nhw->niw", _overlap(height, size[0]), cols.reshape(-1, height, size[1]))
    return out.reshape(*lead, *size)


def _assert_area(got: np.ndarray, ref: np.ndarray, exact: bool) -> None:
    """Integer ratios: identical to the float64 reference; others: within float32 rounding."""
    assert got.dtype == np.float32
    if exact:
        np.testing.assert_array_equal(got, ref.astype(np.float32))
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=0)


@pytest.mark.parametrize("size", [(48, 48), (17, 23), (240, 320), (7, 300), (48, 64)])
def test_downsample_routes_agree_and_match_reference(fixtures_dir: Path, size) -> None:
    events, sensor = read_events(fixtures_dir / "sample.aedat4")
    full = events_to_frames(events, sensor, 3)
    direct = events_to_frames(events, sensor, 3, size=size)
    np.testing.assert_array_equal(downsample_sum(full, size), direct)
    assert direct.sum(dtype=np.float64) == pytest.approx(len(events), rel=1e-6)
    _assert_area(direct, _area_reference(full, size), size in ((240, 320), (48, 64)))


def test_downsample_sum_integer_factor_is_block_sum() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 5, size=(2, 2, 6, 8)).astype(np.float32)
    blocks = frames.reshape(2, 2, 3, 2, 4, 2).sum(axis=(3, 5))
    np.testing.assert_array_equal(downsample_sum(frames, (3, 4)), blocks)
    same = downsample_sum(frames, (6, 8))
    np.testing.assert_array_equal(same, frames)
    assert same is not frames


def test_norms() -> None:
    events = make_events(np.zeros(5, dtype=np.int64), [0, 0, 0, 1, 1], [0] * 5, [1] * 5)
    counts = events_to_frames(events, (2, 1), 1)
    assert counts[0, 1, 0].tolist() == [3.0, 2.0]
    logged = events_to_frames(events, (2, 1), 1, norm="log1p")
    np.testing.assert_allclose(logged[0, 1, 0], np.log1p([3.0, 2.0]).astype(np.float32))
    clipped = events_to_frames(events, (2, 1), 1, norm="clip")
    assert clipped[0, 1, 0].tolist() == [1.0, 1.0]
    assert events_to_frames(events, (2, 1), 1, norm="clip", clip_max=2.5)[0, 1, 0].tolist() == [
        2.5,
        2.0,
    ]


@pytest.mark.parametrize("norm", ["none", "log1p", "clip"])
@pytest.mark.parametrize("binning", ["time", "count"])
def test_empty_recording_gives_zero_frames(norm: str, binning: str) -> None:
    empty = make_events(*(np.zeros(0, dtype=np.int64),) * 4)
    frames = events_to_frames(empty, (34, 34), 10, size=(17, 17), binning=binning, norm=norm)
    assert frames.shape == (10, 2, 17, 17) and frames.dtype == np.float32
    assert not np.isnan(frames).any() and not frames.any()


def test_single_timestamp_goes_to_first_bin() -> None:
    events = make_events(np.full(3, 42), [0, 1, 2], [0, 0, 0], [0, 1, 1])
    frames = events_to_frames(events, (3, 1), 4)
    assert frames[0].sum() == 3 and frames[1:].sum() == 0


def test_bad_input_is_refused() -> None:
    events = make_events(np.array([0, 5]), [0, 40], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="outside the 34x34 sensor"):
        events_to_frames(events, (34, 34), 2)
    ok = events[:1]
    with pytest.raises(ValueError, match="T must be a positive integer"):
        events_to_frames(ok, (34, 34), 0)
    with pytest.raises(ValueError, match="never\\s+upsampled"):
        events_to_frames(ok, (34, 34), 2, size=(48, 48))
    with pytest.raises(ValueError, match="binning must be one of"):
        events_to_frames(ok, (34, 34), 2, binning="rate")
    with pytest.raises(ValueError, match="norm must be one of"):
        events_to_frames(ok, (34, 34), 2, norm="minmax")
    with pytest.raises(ValueError, match="structured array with t, x, y, p"):
        events_to_frames(np.zeros((3, 4)), (34, 34), 2)


def _oracle_frames(events: np.ndarray, sensor, T: int, size=None) -> np.ndarray:
    """Straightforward reference: arithmetic bins, full-resolution np.add.at, then the float64
    area sum (float64 result)."""
    width, height = sensor
    t = events["t"].astype(np.int64)
    span = int(t.max() - t.min())
    b = np.zeros(len(t), np.int64) if span == 0 else np.minimum((t - t.min()) * T // span, T - 1)
    out = np.zeros((T, 2, height, width), np.float64)
    np.add.at(out, (b, events["p"].astype(np.int64), events["y"], events["x"]), 1)
    return out if size is None else _area_reference(out, size)


@pytest.mark.parametrize("size", [None, (48, 64), (31, 17)])
def test_large_stream_paths_match_oracle(fixtures_dir: Path, monkeypatch, size) -> None:
    """111,954 events take the per-bin path; a small chunk size exercises the chunk loop."""
    import tmkt.events.frames as frames_mod

    events, sensor = read_events(fixtures_dir / "sample.aedat4")
    assert len(events) >= frames_mod._PER_BIN_MIN_EVENTS
    ref = _oracle_frames(events, sensor, 10, size)
    exact = size != (31, 17)
    _assert_area(events_to_frames(events, sensor, 10, size=size), ref, exact)
    monkeypatch.setattr(frames_mod, "_CHUNK", 5000)
    _assert_area(events_to_frames(events, sensor, 10, size=size), ref, exact)
    shuffled = events[np.random.default_rng(0).permutation(len(events))]
    _assert_area(events_to_frames(shuffled, sensor, 10, size=size), ref, exact)


def test_unsorted_small_recording_same_time_frames(fixtures_dir: Path) -> None:
    events, sensor = read_events(fixtures_dir / "sample_nmnist.bin")
    shuffled = events[np.random.default_rng(1).permutation(len(events))]
    np.testing.assert_array_equal(
        events_to_frames(shuffled, sensor, 7), events_to_frames(events, sensor, 7)
    )
    ours = events_to_frames(events, sensor, 7)
    np.testing.assert_array_equal(ours, _oracle_frames(events, sensor, 7).astype(np.float32))


def test_other_event_dtypes_accepted_or_refused() -> None:
    tonic_like = np.zeros(3, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    tonic_like["x"] = [0, 1, 2]
    tonic_like["t"] = [0, 1, 2]
    tonic_like["p"] = [True, False, True]
    frames = events_to_frames(tonic_like, (3, 1), 1)
    assert frames[0, 1, 0].tolist() == [1, 0, 1] and frames[0, 0, 0].tolist() == [0, 1, 0]
    tonic_like["x"][0] = -1
    with pytest.raises(ValueError, match=r"outside the 3x1 sensor \(x in \[-1, 2\]"):
        events_to_frames(tonic_like, (3, 1), 1)
    signed_p = np.zeros(2, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "i1")])
    signed_p["p"] = [-1, 1]
    with pytest.raises(ValueError, match="polarity p must be 0 \\(OFF\\) or 1 \\(ON\\)"):
        events_to_frames(signed_p, (3, 1), 1)
    float_t = np.zeros(2, dtype=[("t", "<f8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    with pytest.raises(ValueError, match="integer microseconds"):
        events_to_frames(float_t, (3, 1), 1)


def _reference_frames(
    events: np.ndarray, sensor, T: int, size=None, binning: str = "time", norm: str = "none"
) -> np.ndarray:
    """The oracle above for both binnings and all norms (count bins: j * T // N); integer
    counts are normalised in float32, like the frames, fractional ones in float64."""
    width, height = sensor
    if binning == "time" and len(events):
        counts = _oracle_frames(events, sensor, T, size)
    else:
        counts = np.zeros((T, 2, height, width), np.float64)
        b = np.arange(len(events)) * T // max(len(events), 1)
        np.add.at(counts, (b, events["p"].astype(np.int64), events["y"], events["x"]), 1)
        counts = counts if size is None else _area_reference(counts, size)
    if np.array_equal(counts, np.round(counts)):
        counts = counts.astype(np.float32)
    if norm == "log1p":
        return np.log1p(counts)
    return np.minimum(counts, counts.dtype.type(1.0)) if norm == "clip" else counts


def _mixed_recordings(shared_data: Path) -> list[np.ndarray]:
    """Real N-MNIST files plus the awkward cases: empty, one event, one timestamp, unsorted."""
    recs = [read_events(p).events for p in _nmnist_files(shared_data, 12)]
    one_time = make_events(np.full(5, 7), [1, 2, 3, 4, 5], [2] * 5, [0, 1, 0, 1, 1])
    shuffled = recs[2][np.random.default_rng(0).permutation(len(recs[2]))]
    empty = recs[0][:0]
    return [empty, recs[0], recs[1][:1], one_time, *recs[3:6], empty, shuffled, *recs[6:]]


@pytest.mark.parametrize("norm", ["none", "log1p", "clip"])
@pytest.mark.parametrize("binning", ["time", "count"])
@pytest.mark.parametrize("size", [None, (17, 17), (20, 25), (1, 1)])
def test_single_and_batched_paths_equal_reference(
    shared_data: Path, size, binning: str, norm: str
) -> None:
    recs = _mixed_recordings(shared_data)
    exact = size != (20, 25)
    for T in (1, 7):
        ref = np.stack([_reference_frames(ev, (34, 34), T, size, binning, norm) for ev in recs])
        kw = dict(size=size, binning=binning, norm=norm)
        single = np.stack([events_to_frames(ev, (34, 34), T, **kw) for ev in recs])
        unchecked = np.stack(
            [events_to_frames(ev, (34, 34), T, validate=False, **kw) for ev in recs]
        )
        many = events_to_frames_many(recs, (34, 34), T, **kw)
        assert many.shape == (len(recs), T, 2, *(size or (34, 34))) and many.dtype == np.float32
        np.testing.assert_array_equal(many, single)
        np.testing.assert_array_equal(unchecked, single)
        _assert_area(single, ref, exact)


def test_batched_groups_dtypes_and_large_recordings(
    shared_data: Path, fixtures_dir: Path, monkeypatch
) -> None:
    """Small group limits split the list anywhere; other dtypes and big streams still match."""
    import tmkt.events.frames as frames_mod

    recs = _mixed_recordings(shared_data)
    tonic_like = np.zeros(len(recs[4]), dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"),
                                                ("p", "?")])
    for f in ("t", "x", "y", "p"):
        tonic_like[f] = recs[4][f]
    recs = [*recs[:3], tonic_like, *recs[3:]]
    expected = np.stack([events_to_frames(ev, (34, 34), 10) for ev in recs])
    for events_limit, bins_limit in ((1 << 20, 1 << 19), (3000, 1 << 19), (1 << 20, 30000)):
        monkeypatch.setattr(frames_mod, "_MANY_EVENTS", events_limit)
        monkeypatch.setattr(frames_mod, "_MANY_BINS", bins_limit)
        np.testing.assert_array_equal(events_to_frames_many(recs, (34, 34), 10), expected)
    big, sensor = read_events(fixtures_dir / "sample.aedat4")
    monkeypatch.setattr(frames_mod, "_MANY_EVENTS", 50_000)
    many = events_to_frames_many([big[:1000], big, big[5:9]], sensor, 5, size=(48, 64))
    for row, ev in zip(many, [big[:1000], big, big[5:9]], strict=True):
        np.testing.assert_array_equal(row, events_to_frames(ev, sensor, 5, size=(48, 64)))
    assert events_to_frames_many([], (34, 34), 3).shape == (0, 3, 2, 34, 34)
    buf = np.full((len(recs), 10, 2, 34, 34), 7.0, dtype=np.float32)  # filled after zeroing
    events_to_frames_many(recs, (34, 34), 10, out=buf)
    np.testing.assert_array_equal(buf, expected)
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        events_to_frames_many(recs, (34, 34), 10, out=buf[:, :5])


def test_batched_refuses_bad_input() -> None:
    good = make_events(np.array([0, 5]), [0, 1], [0, 0], [0, 1])
    bad = make_events(np.array([0, 5]), [0, 40], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="outside the 34x34 sensor"):
        events_to_frames_many([good, bad], (34, 34), 2)
    with pytest.raises(ValueError, match="structured array with t, x, y, p"):
        events_to_frames_many([good, np.zeros((3, 4))], (34, 34), 2)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        events_to_frames_many([good], (34, 34), 0)


def _window_128(fixtures_dir: Path) -> np.ndarray:
    """Real DVXplorer events of a 128x128 window of the AEDAT4 fixture (CIFAR10-DVS's size)."""
    events, _ = read_events(fixtures_dir / "sample.aedat4")
    x, y = events["x"].astype(np.int64) - 96, events["y"].astype(np.int64) - 56
    keep = (x >= 0) & (x < 128) & (y >= 0) & (y < 128)
    return make_events(events["t"][keep], x[keep], y[keep], events["p"][keep])


@pytest.mark.parametrize("binning", ["time", "count"])
def test_area_downsampling_matches_float64_reference(fixtures_dir: Path, binning: str) -> None:
    """128 -> 48 (CIFAR10-DVS) and 240x180 -> 48x48 (N-Caltech101) on real events: equal to
    Ay @ counts @ Ax.T in float64 to float32 rounding, totals kept, single == batched."""
    caltech = read_events(fixtures_dir / "ncaltech101_faces_easy_0001.bin",
                          sensor_size=(240, 180)).events
    cases = [(_window_128(fixtures_dir), (128, 128)), (caltech, (240, 180))]
    for events, sensor in cases:
        assert len(events) > 50_000
        full = events_to_frames(events, sensor, 10, binning=binning).astype(np.float64)
        ref = _area_reference(full, (48, 48))
        got = events_to_frames(events, sensor, 10, size=48, binning=binning)
        _assert_area(got, ref, exact=False)
        assert not np.array_equal(got, np.round(got))  # fractional cells exist
        assert got.sum(dtype=np.float64) == pytest.approx(len(events), rel=1e-6)
        np.testing.assert_allclose(got.sum(axis=(2, 3), dtype=np.float64),
                                   full.sum(axis=(2, 3)), rtol=1e-6)  # per bin and polarity
        many = events_to_frames_many([events[:3000], events], sensor, 10, size=48,
                                     binning=binning)
        np.testing.assert_array_equal(many[1], got)
        _assert_area(many[0], _area_reference(
            events_to_frames(events[:3000], sensor, 10, binning=binning), (48, 48)), False)
        np.testing.assert_array_equal(downsample_sum(full.astype(np.float32), 48), got)


@pytest.mark.parametrize("sensor", [(128, 128), (240, 180), (34, 34)])
def test_uniform_input_gives_uniform_frames(sensor) -> None:
    """Four events on every pixel (OFF, ON, OFF, ON copies): every cell gets 4 * (source area /
    target area). The old floor map gave cells 3, 3, 2 source pixels per axis at 128 -> 48
    (9, 6 or 4 in 2-D: up to 2.25x)."""
    width, height = sensor
    n = width * height
    x, y = np.tile(np.arange(width), height), np.repeat(np.arange(height), width)
    events = make_events(np.arange(4 * n), np.tile(x, 4), np.tile(y, 4), np.repeat([0, 1, 0, 1], n))
    for size in [(min(48, height), min(48, width)), (20, 25), (height // 2, width // 2)]:
        cell = 4 * n / (size[0] * size[1])
        frames = events_to_frames(events, sensor, 1, size=size)
        np.testing.assert_allclose(frames[0], cell / 2, rtol=1e-6)
        assert frames.sum(dtype=np.float64) == pytest.approx(4 * n, rel=1e-7)
        by_count = events_to_frames(events, sensor, 4, size=size, binning="count")
        np.testing.assert_allclose(by_count.sum(axis=1), cell / 4, rtol=1e-6)
        logged = events_to_frames(events, sensor, 1, size=size, norm="log1p")
        np.testing.assert_allclose(logged, np.log1p(cell / 2), rtol=1e-6)
        clipped = events_to_frames(events, sensor, 1, size=size, norm="clip", clip_max=2.0)
        assert (clipped == 2.0).all()


# sha256 (first 20 hex digits) of frames made by the floor-map implementation before area
# weights (commit 2dbd561): integer ratios must give the same bytes.
_FLOOR_MAP_FRAMES = {
    "caltech-36x48-time": "1ede7ac38f56503f6666",
    "caltech-180x48-count": "8bac5c17b8359f666162",
    "aedat-48x64-count": "383b8d0a4a06da09d253",
    "nmnist-many-17x17": "ee52472ad9ec25cd3921",
    "caltech-downsample-36x48": "7caacb6d92434b877e24",
}


def test_integer_ratios_bit_identical_to_floor_map(shared_data: Path, fixtures_dir: Path) -> None:
    caltech = read_events(fixtures_dir / "ncaltech101_faces_easy_0001.bin",
                          sensor_size=(240, 180)).events
    aedat, aedat_sensor = read_events(fixtures_dir / "sample.aedat4")
    nmnist = [read_events(p).events
              for p in sorted((shared_data / "N-MNIST/Train").glob("*/*.bin"))[::100][:7]]
    got = {
        "caltech-36x48-time": events_to_frames(caltech, (240, 180), 10, size=(36, 48)),
        "caltech-180x48-count": events_to_frames(caltech, (240, 180), 10, size=(180, 48),
                                                 binning="count"),
        "aedat-48x64-count": events_to_frames(aedat, aedat_sensor, 10, size=(48, 64),
                                              binning="count"),
        "nmnist-many-17x17": events_to_frames_many(nmnist, (34, 34), 10, size=(17, 17)),
        "caltech-downsample-36x48": downsample_sum(events_to_frames(caltech, (240, 180), 3),
                                                   (36, 48)),
    }
    for name, frames in got.items():
        assert frames.dtype == np.float32
        assert hashlib.sha256(frames.tobytes()).hexdigest()[:20] == _FLOOR_MAP_FRAMES[name], name


def test_large_recording_paths(fixtures_dir: Path, monkeypatch) -> None:
    """Recordings of 2**24 or more events count in int64 / float64 grids: same frames."""
    import tmkt.events.frames as frames_mod

    events, sensor = read_events(fixtures_dir / "sample.aedat4")
    cases = [((48, 64), "time"), ((31, 17), "time"), ((31, 17), "count")]
    expected = [events_to_frames(events, sensor, 4, size=s, binning=b) for s, b in cases]
    many = events_to_frames_many([events, events[:10]], sensor, 4, size=(31, 17))
    monkeypatch.setattr(frames_mod, "_FLOAT_EXACT", 1000)
    for (size, binning), ref in zip(cases, expected, strict=True):
        np.testing.assert_array_equal(
            events_to_frames(events, sensor, 4, size=size, binning=binning), ref)
    np.testing.assert_array_equal(
        events_to_frames_many([events, events[:10]], sensor, 4, size=(31, 17)), many)


def test_downsample_sum_fractional_dtypes() -> None:
    rng = np.random.default_rng(3)
    frames = rng.random((2, 9, 7))
    ref = _area_reference(frames, (4, 3))
    got64 = downsample_sum(frames, (4, 3))
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, ref, rtol=1e-12)
    got32 = downsample_sum(frames.astype(np.float32), (4, 3))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref, rtol=1e-5)
    counts = rng.integers(0, 9, (5, 8)).astype(np.uint8)
    np.testing.assert_allclose(downsample_sum(counts, 3), _area_reference(counts, (3, 3)),
                               rtol=1e-6)
    assert downsample_sum(counts, 3).dtype == np.float32


@pytest.mark.parametrize("size", [(17, 17), (20, 20)])
def test_frame_cache_keeps_fractional_frames(shared_data: Path, tmp_path: Path, size) -> None:
    """The cache stores integer-ratio frames as exact uint8 counts and fractional ones as
    float32; both read back equal to decoding."""
    from tmkt.datasets import DataConfig, EventDataset, prepare

    cfg = DataConfig(root=shared_data, max_per_class=1, T=4, size=size, cache=True,
                     cache_dir=tmp_path)
    ds = EventDataset(prepare(cfg), "val")
    stored = np.load(ds.cache.path, mmap_mode="r")
    assert stored.dtype == (np.uint8 if size == (17, 17) else np.float32)
    decoded = np.stack([ds.decode(i) for i in range(len(ds))])
    assert np.array_equal(decoded, np.round(decoded)) == (size == (17, 17))
    np.testing.assert_array_equal(ds.cache.rows(range(len(ds))), decoded)
