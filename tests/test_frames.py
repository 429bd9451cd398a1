"""Frames: exact counts, tonic's ToFrame as oracle, area-summing downsampling, bad input."""

from __future__ import annotations

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
    for path in _nmnist_files(shared_data, 5):
        events, sensor = read_events(path)
        frames = events_to_frames(events, sensor, 10, size=size, binning=binning)
        assert frames.sum() == len(events)
        on = frames[:, 1].sum()
        assert on == np.count_nonzero(events["p"])


@pytest.mark.parametrize("size", [(48, 48), (17, 23), (240, 320), (7, 300)])
def test_downsample_routes_agree_and_match_loop(fixtures_dir: Path, size) -> None:
    events, sensor = read_events(fixtures_dir / "sample.aedat4")
    full = events_to_frames(events, sensor, 3)
    direct = events_to_frames(events, sensor, 3, size=size)
    np.testing.assert_array_equal(downsample_sum(full, size), direct)
    assert direct.sum() == len(events)
    # brute force: every source pixel added to floor(i * out / in)
    h_out, w_out = size
    loop = np.zeros((3, 2, h_out, w_out), dtype=np.float64)
    rows = np.arange(240) * h_out // 240
    cols = np.arange(320) * w_out // 320
    for i in range(240):
        np.add.at(loop[:, :, rows[i]], (slice(None), slice(None), cols), full[:, :, i])
    np.testing.assert_array_equal(direct, loop.astype(np.float32))


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
    """Straightforward reference: arithmetic bins, floor-mapped pixels, np.add.at."""
    width, height = sensor
    h_out, w_out = (height, width) if size is None else size
    t = events["t"].astype(np.int64)
    span = int(t.max() - t.min())
    b = np.zeros(len(t), np.int64) if span == 0 else np.minimum((t - t.min()) * T // span, T - 1)
    out = np.zeros((T, 2, h_out, w_out), np.float64)
    y = events["y"].astype(np.int64) * h_out // height
    x = events["x"].astype(np.int64) * w_out // width
    np.add.at(out, (b, events["p"].astype(np.int64), y, x), 1)
    return out.astype(np.float32)


@pytest.mark.parametrize("size", [None, (48, 64), (31, 17)])
def test_large_stream_paths_match_oracle(fixtures_dir: Path, monkeypatch, size) -> None:
    """111,954 events take the per-bin path; a small chunk size exercises the chunk loop."""
    import tmkt.events.frames as frames_mod

    events, sensor = read_events(fixtures_dir / "sample.aedat4")
    assert len(events) >= frames_mod._PER_BIN_MIN_EVENTS
    ref = _oracle_frames(events, sensor, 10, size)
    np.testing.assert_array_equal(events_to_frames(events, sensor, 10, size=size), ref)
    monkeypatch.setattr(frames_mod, "_CHUNK", 5000)
    np.testing.assert_array_equal(events_to_frames(events, sensor, 10, size=size), ref)
    shuffled = events[np.random.default_rng(0).permutation(len(events))]
    np.testing.assert_array_equal(events_to_frames(shuffled, sensor, 10, size=size), ref)


def test_unsorted_small_recording_same_time_frames(fixtures_dir: Path) -> None:
    events, sensor = read_events(fixtures_dir / "sample_nmnist.bin")
    shuffled = events[np.random.default_rng(1).permutation(len(events))]
    np.testing.assert_array_equal(
        events_to_frames(shuffled, sensor, 7), events_to_frames(events, sensor, 7)
    )
    ours = events_to_frames(events, sensor, 7)
    np.testing.assert_array_equal(ours, _oracle_frames(events, sensor, 7))


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
    """The oracle above for both binnings and all norms (count bins: j * T // N)."""
    if binning == "time":
        counts = _oracle_frames(events, sensor, T, size) if len(events) else None
    else:
        width, height = sensor
        h_out, w_out = (height, width) if size is None else size
        counts = np.zeros((T, 2, h_out, w_out), np.float64)
        b = np.arange(len(events)) * T // max(len(events), 1)
        y = events["y"].astype(np.int64) * h_out // height
        x = events["x"].astype(np.int64) * w_out // width
        np.add.at(counts, (b, events["p"].astype(np.int64), y, x), 1)
        counts = counts.astype(np.float32)
    if counts is None:
        width, height = sensor
        counts = np.zeros((T, 2, *((height, width) if size is None else size)), np.float32)
    if norm == "log1p":
        return np.log1p(counts)
    return np.minimum(counts, np.float32(1.0)) if norm == "clip" else counts


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
    for T in (1, 7):
        ref = np.stack([_reference_frames(ev, (34, 34), T, size, binning, norm) for ev in recs])
        kw = dict(size=size, binning=binning, norm=norm)
        single = np.stack([events_to_frames(ev, (34, 34), T, **kw) for ev in recs])
        unchecked = np.stack(
            [events_to_frames(ev, (34, 34), T, validate=False, **kw) for ev in recs]
        )
        many = events_to_frames_many(recs, (34, 34), T, **kw)
        assert many.shape == (len(recs), T, 2, *(size or (34, 34))) and many.dtype == np.float32
        for got in (single, unchecked, many):
            np.testing.assert_array_equal(got, ref)


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
