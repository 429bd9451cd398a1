"""`tmkt simulate` on real Caltech101 pictures (shared data): bytes, read-back, resume, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tmkt.cli import main
from tmkt.datasets.sim import picture_seed
from tmkt.events.io import EVENT_DTYPE, read_events
from tmkt.events.sim import preset, simulate_batch
from tmkt.events.simulate_dataset import (
    MANIFEST,
    SimulateError,
    encode_bin,
    load_picture,
    simulate_folder,
)

CLASSES = ("Faces_easy", "accordion", "yin_yang")
SENSOR = (240, 180)


@pytest.fixture(scope="module")
def pictures(shared_data, tmp_path_factory) -> Path:
    """A Caltech101-style folder: 3 real classes x 2 real pictures (copied from shared data)."""
    src = shared_data / "caltech101" / "101_ObjectCategories"
    if not src.is_dir():
        pytest.skip(f"no Caltech101 pictures at {src}")
    root = tmp_path_factory.mktemp("pics") / "101_ObjectCategories"
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for name in ("image_0001.jpg", "image_0002.jpg"):
            shutil.copy(src / c / name, root / c / name)
    return root


def _run(*argv: str) -> int:
    return main(["simulate", "--quiet", *argv])


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*.bin"))}


@pytest.fixture(scope="module")
def runs(pictures, tmp_path_factory) -> tuple[Path, Path]:
    """The same simulation with 1 and with 2 workers (the parent of 101_ObjectCategories is
    accepted as --images)."""
    base = tmp_path_factory.mktemp("out")
    one, two = base / "w1", base / "w2"
    assert _run("--images", str(pictures.parent), "--out", str(one), "--workers", "1") == 0
    assert _run("--images", str(pictures), "--out", str(two), "--workers", "2") == 0
    return one, two


def test_same_bytes_with_1_and_2_workers_and_on_rerun(runs, pictures, tmp_path):
    one, two = runs
    a, b = _files(one), _files(two)
    assert sorted(a) == [f"{c}/image_000{i}.bin" for c in CLASSES for i in (1, 2)]
    assert a == b
    again = tmp_path / "again"
    assert _run("--images", str(pictures), "--out", str(again), "--workers", "2") == 0
    assert _files(again) == a
    info = json.loads((one / MANIFEST).read_text())
    assert info["preset"] == "ncaltech101" and info["seed"] == 0
    assert info["params"] == preset("ncaltech101").to_dict()
    assert not list(one.rglob("*.part"))


def test_read_back_equals_the_simulator_with_tmkt_and_tonic(runs, pictures):
    from tonic.io import read_mnist_file

    one, _ = runs
    dtype = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
    for c in CLASSES:
        for stem in ("image_0001", "image_0002"):
            pic = pictures / c / f"{stem}.jpg"
            want = simulate_batch([load_picture(pic)], preset("ncaltech101"),
                                  seeds=[picture_seed(0, f"{c}/{pic.name}")])[0]
            assert len(want) > 10_000
            # the .bin format stores the simulator's events exactly: x, y < 256 (8 bits),
            # y != 240 (the overflow marker), integer µs t < 2^23, 1-bit polarity
            assert want["x"].max() < 256 and want["y"].max() < 240
            assert want["t"].min() >= 0 and want["t"].max() < 2**23
            path = one / c / f"{stem}.bin"
            assert path.stat().st_size == 5 * len(want)
            got = read_events(path, sensor_size=SENSOR).events
            np.testing.assert_array_equal(got, want)  # t, x, y, p: bit-exact
            tonic = read_mnist_file(str(path), dtype=dtype)
            for k in "xytp":
                np.testing.assert_array_equal(tonic[k], want[k].astype(np.int64))


def test_encode_bin_refuses_events_the_format_cannot_hold():
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    ev["t"] = 2**23
    with pytest.raises(SimulateError, match="range"):
        encode_bin(ev)


def test_killed_run_resumes_and_completes(runs, pictures, tmp_path, capsys):
    one, _ = runs
    out = tmp_path / "killed"
    shutil.copytree(one, out)
    (out / "accordion" / "image_0002.bin").unlink()  # never written
    (out / "yin_yang" / "image_0001.bin").unlink()
    (out / "yin_yang" / "image_0001.bin.part").write_bytes(b"\x01\x02\x03")  # killed mid-write
    capsys.readouterr()
    assert _run("--images", str(pictures), "--out", str(out), "--workers", "1") == 0
    line = capsys.readouterr().out
    assert "2 simulated" in line and "4 already there" in line and "0 unreadable" in line
    assert _files(out) == _files(one)
    assert not list(out.rglob("*.part"))


def test_folder_of_another_simulation_is_refused(runs, pictures, capsys):
    one, _ = runs
    before = _files(one)
    for extra in (["--seed", "1"], ["--preset", "nmnist"], ["--set", "threshold_on=0.3"]):
        capsys.readouterr()
        assert _run("--images", str(pictures), "--out", str(one), *extra) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "holds another simulation" in err and str(one) in err
    assert _files(one) == before


def test_non_empty_foreign_folder_and_no_class_folders_are_refused(pictures, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    assert _run("--images", str(pictures), "--out", str(foreign)) == 2
    assert "non-empty folder" in capsys.readouterr().err
    empty = tmp_path / "nopics"
    (empty / "loose").mkdir(parents=True)
    (tmp_path / "nopics" / "a.jpg").write_bytes(b"")
    assert _run("--images", str(empty), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no class folders" in err


def test_truncated_jpeg_is_named_and_skipped_or_stops(pictures, tmp_path, capsys):
    root = tmp_path / "pics"
    (root / "accordion").mkdir(parents=True)
    shutil.copy(pictures / "accordion" / "image_0001.jpg", root / "accordion")
    bad = root / "accordion" / "image_0002.jpg"
    bad.write_bytes((pictures / "accordion" / "image_0002.jpg").read_bytes()[:200])
    params = preset("nmnist")  # small sensor: fast
    s = simulate_folder(root, tmp_path / "skip", params, preset="nmnist", workers=1,
                        progress=False, log=lambda m: print(m))
    assert (s.done, len(s.failed), s.total) == (1, 1, 2)
    assert str(bad) in capsys.readouterr().out
    assert _files(tmp_path / "skip").keys() == {"accordion/image_0001.bin"}
    assert _run("--preset", "nmnist", "--images", str(root), "--out", str(tmp_path / "cli")) == 0
    out = capsys.readouterr()
    assert str(bad) in out.err and "1 unreadable skipped" in out.out
    assert _run("--preset", "nmnist", "--images", str(root), "--out", str(tmp_path / "stop"),
                "--on-error", "stop", "--workers", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(bad) in err and "cannot read picture" in err
    assert not (tmp_path / "stop" / "accordion" / "image_0002.bin").exists()
