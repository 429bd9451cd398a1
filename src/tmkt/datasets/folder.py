"""`folder`: any `<class>/<event file>` folder (root) with any `<class>/<image>` folder.

`static_root` must be given. Items are keyed by (class, file stem): a recording and a picture
with the same stem in the same class are taken to show the same thing (`pairing="index"`, and
the picture of a val/test recording is kept out of the training pool). Sensor size: the reader's
per file unless cfg.options["sensor_size"] = (W, H) is set; with varying sizes set cfg.size.
"""

from __future__ import annotations

import numpy as np

from tmkt.datasets.base import DatasetError, Item, Sources, require_dir
from tmkt.datasets.config import DataConfig
from tmkt.datasets.ncaltech101 import file_items, load_image
from tmkt.datasets.registry import DATASETS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LAYOUT = """  <root>/<class>/<recording>   (.bin, .aedat, .aedat4, .dat, .npy, .npz)
  <static_root>/<class>/<image> (.png, .jpg, ...)"""


class EventLoader:
    """Reads any supported event file (optionally on a fixed sensor, clipping outside events)."""

    def __init__(self, sensor_size: tuple[int, int] | None) -> None:
        self.sensor_size = sensor_size

    def __call__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        from tmkt.events.io import read_events

        if self.sensor_size is None:
            rec = read_events(item.path)
        else:
            rec = read_events(item.path, sensor_size=self.sensor_size, clip=True)
        return rec.events, tuple(rec.sensor_size)


@DATASETS.register("folder")
def folder(cfg: DataConfig) -> Sources:
    """Event and picture folders of the same classes."""
    from tmkt.events.io import READERS

    if cfg.static_root is None:
        raise DatasetError("dataset 'folder' needs static_root (the <class>/<image> folder)")
    top = require_dir(cfg.root_path, "event folder", LAYOUT, None)
    pics = require_dir(cfg.static_root_path, "picture folder", LAYOUT, None)
    events = file_items(top, tuple(READERS), set())
    static = file_items(pics, IMAGE_SUFFIXES, set())
    sensor = cfg.options.get("sensor_size")
    sensor = tuple(int(v) for v in sensor) if sensor is not None else None
    return Sources("folder", events, static, EventLoader(sensor), load_image, sensor)
