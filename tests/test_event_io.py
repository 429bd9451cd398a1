"""Event readers against real files, tonic/spikingjelly's decoders, and bad input."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import numpy as np
import pytest
import tonic.io

from tmkt.events.formats.aedat2 import aedat2_header
from tmkt.events.io import (
    EVENT_DTYPE,
    READERS,
    EventFileError,
    make_events,
    read_aedat2,
    read_bin,
    read_events,
    read_prophesee_dat,
)


def _tonic_nmnist(path: Path) -> np.ndarray:
    dtype = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    return tonic.io.read_mnist_file(str(path), dtype=dtype)


def _assert_same_events(ours: np.ndarray, ref: np.ndarray) -> None:
    assert len(ours) == len(ref["t"])
    for name in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(ours[name].astype(np.int64), ref[name].astype(np.int64))


def _spikingjelly_cifar10dvs_loader():
    """spikingjelly's own CIFAR10-DVS decoding functions, taken from its source by name.

    (Importing spikingjelly.datasets needs torchvision, which this environment lacks.)
    """
    import spikingjelly

    src = Path(spikingjelly.__file__).parent / "datasets" / "cifar10_dvs.py"
    tree = ast.parse(src.read_text())
    wanted = {
        "_read_bits", "_skip_header", "_load_raw_events", "_parse_raw_address",
        "_load_events", "_load_origin_data", "x_mask", "x_shift", "y_mask", "y_shift",
        "polarity_mask", "polarity_shift", "valid_mask", "valid_shift", "EVT_DVS",
    }
    body = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in wanted:
            body.append(node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in wanted for t in node.targets
        ):
            body.append(node)
    namespace = {"np": np, "Union": object, "Path": Path, "logger": None}
    module = ast.Module(body=body, type_ignores=[])
    exec(compile(module, str(src), "exec"), namespace)  # noqa: S102 - trusted installed oracle
    return namespace["_load_origin_data"]


# --- N-MNIST .bin -------------------------------------------------------------------------


def test_bin_fixture_matches_tonic(fixtures_dir: Path) -> None:
    path = fixtures_dir / "sample_nmnist.bin"
    rec = read_events(path)
    assert rec.events.dtype == EVENT_DTYPE
    assert rec.sensor_size == (34, 34)
    assert len(rec.events) == path.stat().st_size // 5 == 4325
    assert tuple(rec.events[0]) == (654, 7, 15, 1)
    _assert_same_events(rec.events, _tonic_nmnist(path))


def test_all_nmnist_files_match_tonic(shared_data: Path) -> None:
    files = sorted((shared_data / "N-MNIST").glob("*/*/*.bin"))
    assert len(files) == 750
    total = 0
    for path in files:
        events, sensor = read_events(path)
        assert sensor == (34, 34)
        assert len(events) == path.stat().st_size // 5
        assert events["x"].max() < 34 and events["y"].max() < 34
        assert np.all(np.diff(events["t"]) >= 0), path
        assert set(np.unique(events["p"])) <= {0, 1}
        _assert_same_events(events, _tonic_nmnist(path))
        total += len(events)
    assert total == 3027988


def test_bin_timestamp_overflow_like_authors(tmp_path: Path) -> None:
    """y == 240 marks a timestamp overflow: dropped, later events shifted (authors' code)."""
    rows = [(1, 2, 0x80, 0x00, 0x10), (0, 240, 0, 0, 0), (3, 4, 0x00, 0x00, 0x05)]
    path = tmp_path / "overflow.bin"
    path.write_bytes(bytes(b for row in rows for b in row))
    events, sensor = read_bin(path)
    assert sensor == (34, 34)
    assert events.tolist() == [(16, 1, 2, 1), (5 + 2**13, 3, 4, 0)]
    _assert_same_events(events, _tonic_nmnist(path))


def test_bin_large_sensor_and_explicit_size(tmp_path: Path) -> None:
    path = tmp_path / "caltech.bin"
    path.write_bytes(bytes([200, 150, 0x81, 0x02, 0x03, 5, 6, 0, 0, 9]))
    events, sensor = read_bin(path)
    assert sensor == (201, 151)
    assert events.tolist() == [((1 << 16) | (2 << 8) | 3, 200, 150, 1), (9, 5, 6, 0)]
    assert read_bin(path, sensor_size=(240, 180)).sensor_size == (240, 180)


def test_bin_truncated_names_file(tmp_path: Path, fixtures_dir: Path) -> None:
    path = tmp_path / "cut.bin"
    path.write_bytes((fixtures_dir / "sample_nmnist.bin").read_bytes()[:-3])
    with pytest.raises(EventFileError, match=r"cut\.bin.*multiple of 5"):
        read_events(path)


# --- Prophesee .dat (N-CARS) ----------------------------------------------------------------


def _hand_decode_dat(path: Path) -> list[tuple[int, int, int, int]]:
    raw = path.read_bytes()
    pos = 0
    while raw[pos : pos + 1] == b"%":
        pos = raw.index(b"\n", pos) + 1
    assert raw[pos] == 0 and raw[pos + 1] == 8
    out = []
    for off in range(pos + 2, len(raw), 8):
        t, word = struct.unpack("<II", raw[off : off + 8])
        out.append((t, word & 0x3FFF, (word >> 14) & 0x3FFF, int((word >> 28) != 0)))
    return out


def test_dat_fixture_hand_decoded(fixtures_dir: Path) -> None:
    path = fixtures_dir / "sample_ncars.dat"
    events, sensor = read_events(path)
    assert len(events) == 2009 == (path.stat().st_size - 93) // 8
    assert events[:3].tolist() == [(0, 25, 8, 0), (35, 67, 35, 0), (152, 56, 27, 1)]
    assert events.tolist() == _hand_decode_dat(path)
    assert np.all(np.diff(events["t"]) >= 0)
    assert events["x"].max() < 120 and events["y"].max() < 100  # N-CARS crops are 120x100
    assert sensor == (int(events["x"].max()) + 1, int(events["y"].max()) + 1)
    assert read_prophesee_dat(path, sensor_size=(120, 100)).sensor_size == (120, 100)


def test_dat_header_size_and_bad_type(tmp_path: Path) -> None:
    good = tmp_path / "a.dat"
    body = struct.pack("<II", 7, 3 | (5 << 14) | (1 << 28))
    good.write_bytes(b"% Version 2\n% Width 304\n% Height 240\n" + bytes([0, 8]) + body)
    assert read_events(good).sensor_size == (304, 240)
    assert read_events(good).events.tolist() == [(7, 3, 5, 1)]
    bad = tmp_path / "b.dat"
    bad.write_bytes(b"% Version 2\n" + bytes([40, 16]) + body)
    with pytest.raises(EventFileError, match=r"b\.dat.*event type 40"):
        read_events(bad)
    cut = tmp_path / "c.dat"
    cut.write_bytes(b"% Version 2\n" + bytes([0, 8]) + body[:-1])
    with pytest.raises(EventFileError, match=r"c\.dat.*truncated"):
        read_events(cut)


# --- AEDAT4 ---------------------------------------------------------------------------------


def test_aedat4_fixture_matches_tonic(fixtures_dir: Path) -> None:
    path = fixtures_dir / "sample.aedat4"
    events, sensor = read_events(path)
    assert sensor == (320, 240)
    assert len(events) == 111954
    assert events["x"].max() < 320 and events["y"].max() < 240
    assert np.all(np.diff(events["t"]) >= 0)
    ref = tonic.io.read_aedat4(str(path))
    np.testing.assert_array_equal(events["t"], ref["t"].astype(np.int64))
    np.testing.assert_array_equal(events["x"], ref["x"])
    np.testing.assert_array_equal(events["y"], ref["y"])
    np.testing.assert_array_equal(events["p"], ref["on"].astype(np.uint8))


def test_aedat4_garbage_is_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.aedat4"
    path.write_bytes(b"not an aedat4 file at all")
    with pytest.raises(EventFileError, match=r"junk\.aedat4"):
        read_events(path)


# --- AER-DAT 2.0 ----------------------------------------------------------------------------

HEADER = (
    b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n"
    b"# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n"
)


def _write_aedat2(path: Path, column, row, bit0, t, header: bytes = HEADER) -> None:
    address = (np.asarray(row) << 8) | (np.asarray(column) << 1) | np.asarray(bit0)
    raw = np.empty(len(t), dtype=[("a", ">u4"), ("t", ">u4")])
    raw["a"] = address
    raw["t"] = t
    path.write_bytes(header + raw.tobytes())


def test_aedat2_header_fixture(fixtures_dir: Path) -> None:
    path = fixtures_dir / "sample_aedat_header.aedat"
    events, sensor = read_events(path)
    assert sensor == (128, 128) and len(events) == 0 and events.dtype == EVENT_DTYPE
    data = np.fromfile(path, dtype=np.uint8)
    version, chip, start = aedat2_header(path, data)
    assert (version, chip) == ("2.0", "eu.seebetter.ini.chips.davis.Davis346red")
    assert start == path.stat().st_size == 599
    # tonic's parser agrees on the version; at EOF it steps one byte back (598), a quirk of it.
    assert tonic.io.read_aedat_header_from_file(str(path))[:2] == (2.0, 598)


def test_aedat2_synthetic_matches_spikingjelly_and_tonic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    column, row = rng.integers(0, 128, n), rng.integers(0, 128, n)
    bit0, t = rng.integers(0, 2, n), np.sort(rng.integers(0, 2**31, n))
    path = tmp_path / "cifar.aedat"
    _write_aedat2(path, column, row, bit0, t)

    events, sensor = read_events(path)
    assert sensor == (128, 128)
    np.testing.assert_array_equal(events["x"], 127 - row)
    np.testing.assert_array_equal(events["y"], 127 - column)
    np.testing.assert_array_equal(events["p"], 1 - bit0)
    np.testing.assert_array_equal(events["t"], t)
    sj = _spikingjelly_cifar10dvs_loader()(str(path))
    _assert_same_events(events, sj)

    version, start, _ = tonic.io.read_aedat_header_from_file(str(path))
    assert (version, start) == (2.0, len(HEADER))
    raw = tonic.io.get_aer_events_from_file(str(path), version, start)
    np.testing.assert_array_equal(raw["timeStamp"], events["t"])
    # tonic's read_dvs_128 bit layout: x = (a >> 8) & 0x7F, y = (a >> 1) & 0x7F, p = a & 1
    np.testing.assert_array_equal(events["x"], 127 - ((raw["address"] >> 8) & 0x7F))
    np.testing.assert_array_equal(events["y"], 127 - ((raw["address"] >> 1) & 0x7F))
    np.testing.assert_array_equal(events["p"], 1 - (raw["address"] & 1))

    jaer = read_aedat2(path, orientation="jaer").events
    np.testing.assert_array_equal(jaer["x"], 127 - column)
    np.testing.assert_array_equal(jaer["y"], row)


def test_aedat2_errors(tmp_path: Path) -> None:
    cut = tmp_path / "cut.aedat"
    _write_aedat2(cut, [1], [2], [0], [3])
    cut.write_bytes(cut.read_bytes()[:-2])
    with pytest.raises(EventFileError, match=r"cut\.aedat.*multiple of 8"):
        read_events(cut)
    davis = tmp_path / "davis.aedat"
    _write_aedat2(davis, [1], [2], [0], [3], header=b"#!AER-DAT2.0\r\n# AEChip: Davis346red\r\n")
    with pytest.raises(EventFileError, match=r"davis\.aedat.*Davis346red"):
        read_events(davis)
    v3 = tmp_path / "v3.aedat"
    v3.write_bytes(b"#!AER-DAT3.1\r\n")
    with pytest.raises(EventFileError, match=r"v3\.aedat.*3\.1"):
        read_events(v3)
    plain = tmp_path / "plain.aedat"
    plain.write_bytes(b"hello")
    with pytest.raises(EventFileError, match=r"plain\.aedat.*AER-DAT"):
        read_events(plain)


# --- numpy ----------------------------------------------------------------------------------

KNOWN = make_events(np.array([5, 9, 12]), np.array([0, 3, 7]), np.array([1, 2, 4]), [1, 0, 1])


def test_numpy_formats_round_trip(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", KNOWN)
    table = np.stack([KNOWN[f].astype(np.int64) for f in "txyp"], axis=1)
    np.save(tmp_path / "c.npy", table)
    np.savez(tmp_path / "e.npz", events=KNOWN, sensor_size=np.array([10, 8]))
    np.savez(tmp_path / "k.npz", t=KNOWN["t"], x=KNOWN["x"], y=KNOWN["y"], p=KNOWN["p"])
    signed = table.copy()
    signed[:, 3] = np.where(signed[:, 3] > 0, 1, -1)  # -1/1 polarity convention
    np.savez(tmp_path / "one.npz", signed)
    for name, size in [("s.npy", (8, 5)), ("c.npy", (8, 5)), ("e.npz", (10, 8)),
                       ("k.npz", (8, 5)), ("one.npz", (8, 5))]:
        events, sensor = read_events(tmp_path / name)
        assert events.tolist() == KNOWN.tolist(), name
        assert sensor == size, name
    assert read_events(tmp_path / "s.npy", sensor_size=(34, 34)).sensor_size == (34, 34)


def test_numpy_bad_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((4, 3)))
    with pytest.raises(EventFileError, match=r"bad\.npy.*\(N, 4\)"):
        read_events(tmp_path / "bad.npy")


# --- dispatch and bad input -----------------------------------------------------------------


def test_outside_sensor_error_or_clip(tmp_path: Path) -> None:
    np.save(tmp_path / "ev.npy", KNOWN)
    with pytest.raises(EventFileError, match=r"ev\.npy: 1 of 3 events lie outside the 6x6"):
        read_events(tmp_path / "ev.npy", sensor_size=(6, 6))
    events, sensor = read_events(tmp_path / "ev.npy", sensor_size=(6, 6), clip=True)
    assert sensor == (6, 6)
    assert events.tolist() == KNOWN[:2].tolist()


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"")
    with pytest.raises(EventFileError, match=r"x\.mp4.*\.aedat, \.aedat4, \.bin, \.dat, \.npy"):
        read_events(path)
    assert set(READERS) == {".bin", ".aedat", ".aedat4", ".dat", ".npy", ".npz"}


@pytest.mark.parametrize("ext", sorted(READERS))
def test_missing_file_is_clear_error(tmp_path: Path, ext: str) -> None:
    with pytest.raises(EventFileError, match=r"nothere.*no such event file"):
        read_events(tmp_path / f"nothere{ext}")
    reader = READERS[ext]
    with pytest.raises(EventFileError, match=r"no such event file"):
        reader(tmp_path / f"nothere{ext}")


def test_empty_bin_is_empty_recording(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    events, sensor = read_events(path)
    assert len(events) == 0 and sensor == (34, 34) and events.dtype == EVENT_DTYPE


def test_bin_outside_given_sensor_error_or_clip(fixtures_dir: Path) -> None:
    path = fixtures_dir / "sample_nmnist.bin"
    ref = _tonic_nmnist(path)
    inside = (ref["x"] < 20) & (ref["y"] < 20)
    n_out = int((~inside).sum())
    assert 0 < n_out < len(ref["x"])
    with pytest.raises(EventFileError, match=rf"sample_nmnist\.bin: {n_out} of 4325 events"):
        read_events(path, sensor_size=(20, 20))
    events, sensor = read_events(path, sensor_size=(20, 20), clip=True)
    assert sensor == (20, 20) and len(events) == int(inside.sum())
    np.testing.assert_array_equal(events["t"], ref["t"][inside])


def test_bad_sensor_size_argument(tmp_path: Path, fixtures_dir: Path) -> None:
    with pytest.raises(EventFileError, match=r"sample_nmnist\.bin: sensor_size must be"):
        read_events(fixtures_dir / "sample_nmnist.bin", sensor_size=(0, 34))
    with pytest.raises(EventFileError, match=r"sample_nmnist\.bin: sensor_size must be"):
        read_events(fixtures_dir / "sample_nmnist.bin", sensor_size="big")
