"""Builders of tiny fake dataset trees for the dataset tests (helpers only, no tests here)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_bin(path: Path, n: int = 40, seed: int = 0, size: tuple[int, int] = (34, 34)) -> int:
    """An N-MNIST/N-Caltech101 style .bin with n events inside `size` (W, H); returns n."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, size[0], n)
    y = rng.integers(0, size[1], n)
    p = rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 100_000, n))
    rec = np.zeros((n, 5), np.uint8)
    rec[:, 0] = x
    rec[:, 1] = y
    rec[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rec.tobytes())
    return n


def write_aedat2(path: Path, n: int = 30, seed: int = 0) -> int:
    """A DVS128 AER-DAT 2.0 file with n events; returns n."""
    rng = np.random.default_rng(seed)
    row = rng.integers(0, 128, n)
    col = rng.integers(0, 128, n)
    bit = rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 50_000, n))
    body = np.zeros(n, [("a", ">u4"), ("t", ">u4")])
    body["a"] = (row << 8) | (col << 1) | bit
    body["t"] = t
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#!AER-DAT2.0\r\n# fake\r\n" + body.tobytes())
    return n


def write_image(path: Path, value: int, size: tuple[int, int] = (20, 16)) -> None:
    """A constant grey RGB image (png or jpg by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def write_idx(path: Path, arr: np.ndarray) -> None:
    """A gzip IDX file of a uint8 array."""
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(arr, np.uint8).tobytes())


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]


def write_cifar(folder: Path, per_batch: int = 20) -> None:
    """CIFAR-10 python batches: `per_batch` pictures each, label = index % 10, pixel = label."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {b"label_names": [n.encode() for n in CIFAR_NAMES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        data = np.repeat(np.asarray(labels, np.uint8)[:, None], 3072, axis=1)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def make_ncaltech(root: Path, classes: dict[str, int], static_extra: dict[str, int]) -> None:
    """N-Caltech101 `Caltech101/<c>/image_XXXX.bin` and Caltech101 jpgs of the same names;
    `static_extra` adds picture-only classes."""
    for c, n in classes.items():
        for i in range(1, n + 1):
            write_bin(root / "Caltech101" / c / f"image_{i:04d}.bin", seed=i, size=(240, 180))
            write_image(root / "101_ObjectCategories" / c / f"image_{i:04d}.jpg", 10 * i)
    for c, n in static_extra.items():
        for i in range(1, n + 1):
            write_image(root / "101_ObjectCategories" / c / f"image_{i:04d}.jpg", 10 * i)
