"""MNIST in IDX `.gz` files: reader, and the IDX position -> original MNIST index map."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from tmkt.datasets.base import DatasetError, Item

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FULL_COUNT = {"train": 60000, "test": 10000}
# Copies with a documented removal: count -> removed [start, stop) original indices. The shared
# test data slice removed the MNIST pictures of its held-back N-MNIST recordings.
KNOWN_REMOVALS = {"train": {59700: (700, 1000)}, "test": {9950: (50, 100)}}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed if it ends in .gz) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    head = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(data[4:head], ">u4"))
    dtype = np.dtype(_DTYPES[data[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(data) - head != need:
        raise DatasetError(
            f"{path}: IDX header says shape {shape} ({need} bytes) but the file holds "
            f"{len(data) - head} bytes: truncated or damaged"
        )
    return np.frombuffer(data, dtype, offset=head).reshape(shape)


def find_idx(raw: Path, stem: str) -> Path:
    """`raw/<stem>.gz` or `raw/<stem>`; error naming both if neither exists."""
    for p in (raw / f"{stem}.gz", raw / stem):
        if p.is_file():
            return p
    raise DatasetError(f"MNIST file missing: neither {raw / stem}.gz nor {raw / stem} exists")


def original_indices(side: str, count: int) -> np.ndarray | None:
    """Original MNIST index of each IDX position, or None when this copy's layout is unknown."""
    if count == FULL_COUNT[side]:
        return np.arange(count)
    removed = KNOWN_REMOVALS[side].get(count)
    if removed is None:
        return None
    start, stop = removed
    pos = np.arange(count)
    return np.where(pos < start, pos, pos + (stop - start))


class MnistImages:
    """Holds the MNIST pictures; `__call__(item)` returns the (28, 28) uint8 image of an item."""

    def __init__(self, raw: Path) -> None:
        self.images: dict[str, np.ndarray] = {}
        self.labels: dict[str, np.ndarray] = {}
        for side, (img, lab) in IDX_FILES.items():
            images = read_idx(find_idx(raw, img))
            labels = read_idx(find_idx(raw, lab))
            if images.ndim != 3 or labels.shape != images.shape[:1]:
                raise DatasetError(
                    f"MNIST {side} files under {raw} disagree: images {images.shape}, "
                    f"labels {labels.shape}"
                )
            self.images[side], self.labels[side] = images, labels

    def items(self) -> tuple[list[Item], list[str]]:
        """All pictures as items (ref "train/<pos>", key ("train", original index) where known),
        and the sides whose position -> index map is unknown."""
        out: list[Item] = []
        unknown: list[str] = []
        for side in IDX_FILES:
            labels = self.labels[side]
            orig = original_indices(side, len(labels))
            if orig is None:
                unknown.append(side)
            for pos, lab in enumerate(labels.tolist()):
                key = (side, int(orig[pos])) if orig is not None else None
                out.append(Item(f"{side}/{pos:05d}", str(lab), key, side))
        return out, unknown

    def __call__(self, item: Item) -> np.ndarray:
        side, pos = item.ref.split("/")
        return self.images[side][int(pos)]
