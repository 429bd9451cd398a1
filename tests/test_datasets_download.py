"""download(): against a local HTTP server (127.0.0.1) serving archives built in tmp_path."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from test_datasets_fakes import write_bin, write_idx

from tmkt.datasets import DataConfig, DatasetError, download, prepare
from tmkt.datasets.download import RESOURCES, Resource, unpack

# the package exports the function `download`, which shadows the module name
DL = importlib.import_module("tmkt.datasets.download")


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _nmnist_archives(served):
    src = served.parent / "src"
    for side, n in (("Train", 3), ("Test", 2)):
        for lab in ("0", "1"):
            for i in range(1, n + 1):
                write_bin(src / side / lab / f"{i + 10 * int(lab):05d}.bin", seed=i)
        with zipfile.ZipFile(served / f"{side.lower()}.zip", "w") as z:
            for f in sorted((src / side).rglob("*.bin")):
                z.write(f, f.relative_to(src).as_posix())
    raw = served.parent / "rawsrc"
    labels = np.asarray([0] * 20 + [1] * 20, np.uint8)
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros((40, 28, 28), np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte.gz", labels)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((40, 28, 28), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", labels)
    for f in raw.iterdir():
        (served / f.name).write_bytes(f.read_bytes())


def test_download_nmnist_family_places_and_loads(server, tmp_path, monkeypatch):
    served, base = server
    _nmnist_archives(served)
    res = {
        "nmnist": [
            Resource(base + "train.zip", "train.zip", _md5(served / "train.zip"),
                     "N-MNIST/Train", "Train"),
            Resource(base + "test.zip", "test.zip", _md5(served / "test.zip"),
                     "N-MNIST/Test", "Test"),
        ],
        "mnist": [
            Resource(base + r.filename, r.filename, _md5(served / r.filename), r.dest)
            for r in RESOURCES["mnist"]
        ],
    }
    monkeypatch.setattr(DL, "RESOURCES", res)
    root = tmp_path / "data"
    placed = download("nmnist", root)
    assert [p.relative_to(root).as_posix() for p in placed][:2] == ["N-MNIST/Train", "N-MNIST/Test"]
    assert sorted(p.name for p in (root / "N-MNIST/Train/1").iterdir()) == [
        "00011.bin", "00012.bin", "00013.bin"]
    assert (root / "MNIST/raw/t10k-labels-idx1-ubyte.gz").is_file()
    assert not (root / ".tmkt_download").exists()  # scratch removed
    with pytest.warns(UserWarning, match="unknown subset of MNIST"):  # 40 fake pictures
        p = prepare(DataConfig(root=root, cache=False))
    assert p.classes == ["0", "1"] and len(p.split.event_refs("test")) == 4
    assert download("nmnist", root) == placed  # already there: nothing fetched again


def test_checksum_mismatch_places_nothing(server, tmp_path, monkeypatch):
    served, base = server
    _nmnist_archives(served)
    res = {"nmnist": [Resource(base + "train.zip", "train.zip", "0" * 32, "N-MNIST/Train",
                               "Train")]}
    monkeypatch.setattr(DL, "RESOURCES", res)
    monkeypatch.setattr(DL, "FAMILIES", {})
    with pytest.raises(DatasetError, match=r"checksum mismatch for http://127\.0\.0\.1.*0{32}"):
        download("nmnist", tmp_path / "d")
    assert not (tmp_path / "d/N-MNIST").exists()
    assert not list((tmp_path / "d").rglob("*.part"))


def test_tarball_member_and_missing_url(server, tmp_path, monkeypatch):
    served, base = server
    src = tmp_path / "t" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    (src / "batches.meta").write_bytes(b"x")
    with tarfile.open(served / "c.tar.gz", "w:gz") as t:
        t.add(src, arcname="cifar-10-batches-py")
    res = {"cifar10": [Resource(base + "c.tar.gz", "c.tar.gz", _md5(served / "c.tar.gz"),
                                "cifar-10-batches-py", "cifar-10-batches-py")],
           "gone": [Resource(base + "nope.zip", "nope.zip", "0" * 32, "x", "x")]}
    monkeypatch.setattr(DL, "RESOURCES", res)
    download("cifar10", tmp_path / "d")
    assert (tmp_path / "d/cifar-10-batches-py/batches.meta").read_bytes() == b"x"
    with pytest.raises(DatasetError, match="download of http.*nope.zip failed"):
        download("gone", tmp_path / "d")


def test_names_and_manual_caltech101(tmp_path):
    with pytest.raises(DatasetError, match=r"no download for 'imagenet'; valid: .*cifar10dvs"):
        download("imagenet", tmp_path)
    with pytest.raises(DatasetError, match="no public direct URL.*101_ObjectCategories"):
        download("caltech101", tmp_path)
    assert {"nmnist", "mnist", "cifar10", "cifar10dvs", "ncaltech101"} <= set(RESOURCES)


def test_unpack_refuses_escaping_members(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../evil.txt", "x")
    with pytest.raises(DatasetError, match="would land outside"):
        unpack(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
