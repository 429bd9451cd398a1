"""`ncaltech101`: N-Caltech101 (`Caltech101/<class>/image_XXXX.bin`) with Caltech101 (jpg).

Classes by name. `BACKGROUND_Google` is left out of both by default (`exclude_background`).
N-Caltech101 has "Faces_easy" and no "Faces"; Caltech101 has both, so Faces_easy pairs with
Faces_easy and Caltech101's "Faces" is left out (only when the events have no "Faces" class).
`image_XXXX.bin` records `image_XXXX.jpg` of the same class: that is the item key, used by
`pairing="index"` and to keep pictures of val/test recordings out of the training pool.
Recordings are read on a 240x180 sensor (cfg.options["sensor_size"] to change), events outside
it dropped; there is no official test split (`test_fraction` per class). An unreadable picture
stops training naming the file, or is left out and counted (`options={"bad_pictures": "skip"}`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tmkt.datasets.base import DatasetError, Item, Sources, find_dir, scan_class_folders
from tmkt.datasets.config import DataConfig
from tmkt.datasets.registry import DATASETS
from tmkt.static.io import read_rgb

SENSOR_SIZE = (240, 180)
BACKGROUND = "BACKGROUND_Google"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# an unreadable or truncated picture: "stop" (default; reading it fails, naming the file) or
# "skip" (every picture is decoded once when the dataset is scanned; the bad ones are left out,
# counted on stderr) (data.options.bad_pictures)
BAD_PICTURES = ("stop", "skip")
LAYOUT = """  <root>/Caltech101/<class>/image_XXXX.bin        (N-Caltech101, as its archive unpacks)
  <static_root>/101_ObjectCategories/<class>/image_XXXX.jpg   (Caltech101)"""


class EventLoader:
    """Reads a recording on a fixed sensor, dropping events outside it."""

    def __init__(self, sensor_size: tuple[int, int]) -> None:
        self.sensor_size = sensor_size

    def __call__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        from tmkt.events.io import read_events

        rec = read_events(item.path, sensor_size=self.sensor_size, clip=True)
        return rec.events, tuple(rec.sensor_size)


def load_image(item: Item) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    return read_rgb(item.path)


def readable_pictures(items: list[Item]) -> list[Item]:
    """The pictures that decode (each decoded once, ~3 ms per Caltech101 JPEG); the others are
    left out with one line on stderr giving their count and the first names."""
    bad: list[Item] = []
    for it in items:
        try:
            load_image(it)
        except (OSError, ValueError, SyntaxError):
            bad.append(it)
    if bad:
        names = ", ".join(str(it.path) for it in bad[:3]) + (", ..." if len(bad) > 3 else "")
        print(f"ncaltech101: skipped {len(bad)} unreadable picture(s) of {len(items)} "
              f"(data.options.bad_pictures: skip): {names}", file=sys.stderr)
    return [it for it in items if it not in bad]


def file_items(top: Path, suffixes: tuple[str, ...], skip: set[str]) -> list[Item]:
    """`<class>/<file>` items keyed by (class, file stem)."""
    return [
        Item(f"{label}/{f.name}", label, (label, f.stem), None, f)
        for label, files in scan_class_folders(top, suffixes, exclude=skip).items()
        for f in files
    ]


@DATASETS.register("ncaltech101")
def ncaltech101(cfg: DataConfig) -> Sources:
    """N-Caltech101 events with Caltech101 pictures, by class name and file name."""
    top = find_dir(
        cfg.root_path,
        ["Caltech101", "N-Caltech101/Caltech101", "N-Caltech101"],
        "N-Caltech101 folder",
        LAYOUT,
        "ncaltech101",
    )
    skip = {BACKGROUND} if cfg.exclude_background else set()
    events = file_items(top, (".bin",), skip)
    pics = find_dir(
        cfg.static_root_path,
        ["101_ObjectCategories", "caltech101/101_ObjectCategories"],
        "Caltech101 folder",
        LAYOUT,
        "caltech101",
    )
    static_skip = set(skip)
    if "Faces" not in {e.label for e in events}:
        static_skip.add("Faces")
    static = file_items(pics, IMAGE_SUFFIXES, static_skip)
    policy = cfg.options.get("bad_pictures", "stop")
    if policy not in BAD_PICTURES:
        raise DatasetError(
            f"data.options.bad_pictures must be one of {BAD_PICTURES}, got {policy!r}"
        )
    if policy == "skip":
        static = readable_pictures(static)
    sensor = tuple(cfg.options.get("sensor_size", SENSOR_SIZE))
    return Sources("ncaltech101", events, static, EventLoader(sensor), load_image, sensor)
