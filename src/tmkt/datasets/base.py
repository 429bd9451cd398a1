"""What a dataset family provides: event and static item lists plus loaders (`Sources`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """Bad or missing data on disk, or settings the data cannot satisfy."""


@dataclass(frozen=True)
class Item:
    """One sample: `ref` is a unique, stable id (a relative path for files); `label` a class name.

    `key` links an event recording to its static picture where the correspondence is known
    (equal keys = same picture), else None. `official` is "train"/"test" where the dataset ships
    an official split, else None.
    """

    ref: str
    label: str
    key: Hashable | None = None
    official: str | None = None
    path: Path | None = None


@dataclass
class Sources:
    """A dataset family's data: the factory contract's return value (see `registry`).

    - `events`, `static`: item lists (any order; splits sort them by `ref`).
    - `load_events(item) -> (events structured array, sensor_size (W, H))`.
    - `load_static(item) -> uint8 image, (H, W) gray or (H, W, 3) RGB`.
    - `sensor_size`: (W, H) shared by all recordings, or None when it varies.
    - `index_error`: why `pairing="index"` is unavailable, or None when keys give it.
    - `static_error`: why there are no static pictures (e.g. MNIST is not there), or None; the
      events alone still serve the event-only method and evaluation.
    """

    name: str
    events: list[Item]
    static: list[Item]
    load_events: Callable[[Item], tuple[np.ndarray, tuple[int, int]]]
    load_static: Callable[[Item], np.ndarray]
    sensor_size: tuple[int, int] | None
    index_error: str | None = None
    static_error: str | None = None


def require_dir(path: Path, what: str, layout: str, dataset: str | None) -> Path:
    """Return `path` if it is a folder, else a DatasetError showing the expected layout (and
    the download hint when `dataset` names something `download` knows)."""
    if not path.is_dir():
        hint = "Point the root at it."
        if dataset is not None:
            hint = (
                f"Get the data with `tmkt.datasets.download({dataset!r}, root)` "
                "(CLI: --download) or point the root at it."
            )
        raise DatasetError(
            f"{what} not found: {path} is not a folder.\nExpected layout:\n{layout}\n{hint}"
        )
    return path


def find_dir(
    root: Path, candidates: Sequence[str], what: str, layout: str, dataset: str | None
) -> Path:
    """The first existing `root/candidate` folder, else the missing-folder error for the first."""
    for c in candidates:
        p = root / c if c else root
        if p.is_dir():
            return p
    return require_dir(root / candidates[0], what, layout, dataset)


def scan_class_folders(
    top: Path,
    suffixes: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    what: str = "class folder",
) -> dict[str, list[Path]]:
    """`{class: sorted files}` under `top/<class>/`, files filtered by suffix (case-insensitive).

    Empty class folders (no matching file) and a `top` with no class folders are errors.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    skip = set(exclude)
    out: dict[str, list[Path]] = {}
    empty: list[str] = []
    for d in sorted(p for p in top.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name in skip:
            continue
        files = sorted(
            f for f in d.iterdir() if f.is_file() and f.name.lower().endswith(suffixes)
        )
        if not files:
            empty.append(d.name)
        out[d.name] = files
    if empty:
        raise DatasetError(
            f"empty {what}(s) under {top}: {', '.join(empty)} hold no "
            f"{'/'.join(suffixes)} file"
        )
    if not out:
        raise DatasetError(f"no {what}s under {top} (expected {top}/<class>/<file>)")
    return out
