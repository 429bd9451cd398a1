"""CIFAR-10 python pickle batches (`cifar-10-batches-py/`), read with a restricted unpickler."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from tmkt.datasets.base import DatasetError, Item

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Only numpy arrays and plain containers: a pickle is code, so nothing else is loaded."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys; a bad file is a DatasetError naming it."""
    try:
        with open(path, "rb") as f:
            raw = _SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(f"CIFAR-10 file missing: {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({e})") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: not a CIFAR-10 python batch (no dict inside)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


class CifarImages:
    """All CIFAR-10 pictures (N, 32, 32, 3) uint8; `__call__(item)` returns one."""

    def __init__(self, folder: Path) -> None:
        meta = read_batch(folder / "batches.meta")
        self.names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
        self.batches: dict[str, np.ndarray] = {}
        self.labels: dict[str, list[int]] = {}
        for name in TRAIN_BATCHES + TEST_BATCHES:
            d = read_batch(folder / name)
            try:
                data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                labels = [int(v) for v in d["labels"]]
            except (KeyError, ValueError) as e:
                raise DatasetError(f"{folder / name}: not a CIFAR-10 batch ({e})") from None
            if len(labels) != len(data):
                raise DatasetError(f"{folder / name}: {len(data)} images but {len(labels)} labels")
            self.batches[name] = np.ascontiguousarray(data.transpose(0, 2, 3, 1))
            self.labels[name] = labels

    def items(self) -> list[Item]:
        """One item per picture, ref "<batch>/<index>", official train/test by batch."""
        out = []
        for name, labels in self.labels.items():
            side = "test" if name in TEST_BATCHES else "train"
            out += [
                Item(f"{name}/{i:05d}", self.names[c], None, side) for i, c in enumerate(labels)
            ]
        return out

    def __call__(self, item: Item) -> np.ndarray:
        name, i = item.ref.split("/")
        return self.batches[name][int(i)]
