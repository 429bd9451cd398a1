"""`cifar10dvs`: CIFAR10-DVS (`<class>/cifar10_<class>_<i>.aedat[4]`) with CIFAR-10 pickles.

The recordings do not say which CIFAR-10 picture they show, so only `pairing="class"` works,
and the static pool cannot leave out pictures of test recordings (there is no known link).
CIFAR10-DVS has no official test split: `test_fraction` (default 0.1, i.e. 9:1) per class.
"""

from __future__ import annotations

import numpy as np

from tmkt.datasets.base import Item, Sources, find_dir, scan_class_folders
from tmkt.datasets.cifar10 import CifarImages
from tmkt.datasets.config import DataConfig
from tmkt.datasets.registry import DATASETS

SENSOR_SIZE = (128, 128)
SUFFIXES = (".aedat", ".aedat4")
LAYOUT = """  <root>/CIFAR10-DVS/<class>/cifar10_<class>_<i>.aedat (or .aedat4; <root> may also
      be the folder holding the 10 class folders: airplane, automobile, ..., truck)
  <static_root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}"""


def load_recording(item: Item) -> tuple[np.ndarray, tuple[int, int]]:
    """Read one CIFAR10-DVS recording (128x128 DVS)."""
    from tmkt.events.io import read_events

    rec = read_events(item.path, sensor_size=SENSOR_SIZE)
    return rec.events, tuple(rec.sensor_size)


@DATASETS.register("cifar10dvs")
def cifar10dvs(cfg: DataConfig) -> Sources:
    """CIFAR10-DVS events with CIFAR-10 pictures, classes by name."""
    root = cfg.root_path
    top = root if (root / "airplane").is_dir() else root / "CIFAR10-DVS"
    for alt in ("CIFAR10DVS", "cifar10dvs", "CIFAR10-DVS"):
        if not top.is_dir() and (root / alt).is_dir():
            top = root / alt
    top = find_dir(top, [""], "CIFAR10-DVS folder", LAYOUT, "cifar10dvs")
    events = [
        Item(f"{label}/{f.name}", label, None, None, f)
        for label, files in scan_class_folders(top, SUFFIXES).items()
        for f in files
    ]
    folder = find_dir(
        cfg.static_root_path, ["cifar-10-batches-py"], "CIFAR-10 folder", LAYOUT, "cifar10"
    )
    images = CifarImages(folder)
    return Sources(
        "cifar10dvs",
        events,
        images.items(),
        load_recording,
        images,
        SENSOR_SIZE,
        index_error="CIFAR10-DVS does not record which CIFAR-10 picture each recording shows",
    )
