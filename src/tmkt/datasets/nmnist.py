"""`nmnist`: N-MNIST recordings (`N-MNIST/Train|Test/<label>/<NNNNN>.bin`) with MNIST (IDX)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from tmkt.datasets.base import DatasetError, Item, Sources, find_dir, scan_class_folders
from tmkt.datasets.config import DataConfig
from tmkt.datasets.mnist import MnistImages
from tmkt.datasets.registry import DATASETS

SENSOR_SIZE = (34, 34)
LAYOUT = """  <root>/N-MNIST/Train/<label 0-9>/<NNNNN>.bin   (<root> may also be the N-MNIST folder)
  <root>/N-MNIST/Test/<label 0-9>/<NNNNN>.bin
  <static_root>/MNIST/raw/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
                          t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"""


def load_recording(item: Item) -> tuple[np.ndarray, tuple[int, int]]:
    """Read one event file with the project's reader; returns (events, sensor_size (W, H))."""
    from tmkt.events.io import read_events

    rec = read_events(item.path, sensor_size=SENSOR_SIZE)
    return rec.events, tuple(rec.sensor_size)


def nmnist_items(top: Path) -> list[Item]:
    """Items of `top/Train|Test/<label>/<NNNNN>.bin`; key (side, NNNNN - 1) = the MNIST picture."""
    items: list[Item] = []
    for folder, side in (("Train", "train"), ("Test", "test")):
        side_dir = find_dir(top, [folder], f"N-MNIST {folder} folder", LAYOUT, "nmnist")
        for label, files in scan_class_folders(side_dir, [".bin"]).items():
            for f in files:
                if not f.stem.isdigit() or int(f.stem) < 1:
                    raise DatasetError(f"{f}: N-MNIST file names must be <NNNNN>.bin, NNNNN >= 1")
                ref = f"{folder}/{label}/{f.name}"
                items.append(Item(ref, label, (side, int(f.stem) - 1), side, f))
    return items


@DATASETS.register("nmnist")
def nmnist(cfg: DataConfig) -> Sources:
    """N-MNIST events with MNIST pictures; keys link file NNNNN to MNIST image NNNNN - 1."""
    root = cfg.root_path
    top = root if (root / "Train").is_dir() else root / "N-MNIST"
    top = find_dir(top, [""], "N-MNIST folder", LAYOUT, "nmnist")
    events = nmnist_items(top)
    try:
        raw = find_dir(cfg.static_root_path, ["MNIST/raw", "raw"], "MNIST raw folder", LAYOUT,
                       "mnist")
    except DatasetError as e:  # events only: the dvs method and `tmkt eval` need no MNIST
        from tmkt.datasets.checks import MissingStatic

        return Sources("nmnist", events, [], load_recording, MissingStatic(str(e)), SENSOR_SIZE,
                       index_error=str(e), static_error=str(e))
    images = MnistImages(raw)
    static, unknown = images.items()
    index_error = None
    if unknown:
        index_error = (
            f"the MNIST {'/'.join(unknown)} IDX files under {raw} hold an unknown subset of "
            "MNIST (neither the full set nor a documented removal), so an IDX position is not "
            "the original MNIST index and recordings cannot be matched to pictures"
        )
        warnings.warn(
            f"{index_error}; static pictures of val/test recordings cannot be left out of the "
            "training pool",
            stacklevel=2,
        )
    check_labels(events, static)
    return Sources("nmnist", events, static, load_recording, images, SENSOR_SIZE, index_error)


def check_labels(events: list[Item], static: list[Item]) -> None:
    """Every recording whose MNIST picture is present must have the picture's label."""
    by_key = {s.key: s for s in static if s.key is not None}
    bad = [e for e in events if e.key in by_key and by_key[e.key].label != e.label]
    if bad:
        e = bad[0]
        raise DatasetError(
            f"{len(bad)} N-MNIST recording(s) disagree with the label of their MNIST picture, "
            f"e.g. {e.path} (folder {e.label}) -> MNIST {e.key[0]} image {e.key[1]} "
            f"(label {by_key[e.key].label}): wrong MNIST copy or renamed files"
        )
