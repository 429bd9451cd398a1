"""`folder`: any `<class>/<event file>` folder (root) with any `<class>/<image>` folder.

`static_root` must be given. Items are keyed by (class, file stem): a recording and a picture
with the same stem in the same class are taken to show the same thing (`pairing="index"`, and
the picture of a val/test recording is kept out of the training pool). Sensor size: the reader's
per file unless cfg.options["sensor_size"] = (W, H) is set; with varying sizes set cfg.size.
With a sensor size set, a recording with events outside it is an error naming the file, unless
cfg.options["clip_events"] is true (then those events are dropped).
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
    """Reads any supported event file (optionally on a fixed sensor: events outside it are an
    error, or dropped with `clip`)."""

    def __init__(self, sensor_size: tuple[int, int] | None, clip: bool = False) -> None:
        self.sensor_size = sensor_size
        self.clip = clip

    def __call__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        from tmkt.events.io import EventFileError, read_events

        if self.sensor_size is None:
            rec = read_events(item.path)
        else:
            try:
                rec = read_events(item.path, sensor_size=self.sensor_size, clip=self.clip)
            except EventFileError as e:
                if "outside" not in str(e):
                    raise
                raise DatasetError(
                    f"{e}; set data.options.sensor_size to the recordings' sensor [W, H], or "
                    "data.options.clip_events: true to drop such events"
                ) from None
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
    clip = bool(cfg.options.get("clip_events", False))
    return Sources("folder", events, static, EventLoader(sensor, clip), load_image, sensor)
