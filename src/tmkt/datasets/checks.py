"""Data checks that turn silently wrong data into a DatasetError naming the file or class.

- `check_train_classes` (once per split): every class has event recordings in the training
  split; a class whose training folder is missing (e.g. `N-MNIST/Train/5`) would otherwise be
  tested but never learned.
- `CheckedLoader` (once per recording read, O(events)): a recording file must hold events
  (a 0-byte or empty file is a failed copy, not a blank recording), and in the headerless
  binary formats (`.bin`, `.dat`), where any bytes decode, timestamps must not go backwards
  (random or shifted bytes decode to events in random time order).
- `require_static`: a source without pictures (`Sources.static_error`, e.g. N-MNIST without
  MNIST) serves the event-only method and evaluation; anything that needs the pictures stops
  with the reason they are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tmkt.datasets.base import DatasetError, Item, Sources
from tmkt.datasets.splits import Split

HEADERLESS = (".bin", ".dat")  # formats without a header or structure a damaged file breaks

EventLoad = Callable[[Item], tuple[np.ndarray, tuple[int, int]]]


def check_train_classes(name: str, classes: list[str], split: Split) -> None:
    """DatasetError when a class has no event recording in the training split."""
    train = split.events.get("train", {})
    missing = [c for c in classes if not train.get(c)]
    if not missing:
        return
    elsewhere = [c for c in missing
                 if any(split.events.get(s, {}).get(c) for s in ("val", "test"))]
    raise DatasetError(
        f"dataset {name!r}: class(es) {missing[:10]}{' ...' if len(missing) > 10 else ''} have "
        f"no event recording in the training split"
        + (f" (but {elsewhere[:10]} have val/test recordings: is a training class folder "
           "missing or empty?)" if elsewhere else "")
        + "; a class must have training recordings to be learned: restore its folder, or "
        "remove the class from every split"
    )


class MissingStatic:
    """The static loader of a source without pictures: reading one is the DatasetError that
    says why they are missing."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __call__(self, item: Item) -> np.ndarray:
        raise DatasetError(self.why)


def require_static(sources: Sources, what: str) -> None:
    """DatasetError when `what` (e.g. "method 'tmkt'") needs static pictures and `sources` has
    none (`Sources.static_error` says why)."""
    if sources.static_error is not None and not sources.static:
        raise DatasetError(f"{what} needs the static pictures, but {sources.static_error}")


def check_recording(path: Path | None, events: np.ndarray) -> None:
    """DatasetError naming `path` for an empty recording or, in headerless formats, one whose
    timestamps go backwards."""
    where = path if path is not None else "recording"
    if len(events) == 0:
        size = f"{Path(path).stat().st_size} bytes" if path is not None and Path(
            path).is_file() else "no events"
        raise DatasetError(
            f"{where}: the recording holds no event ({size}): an empty or damaged file "
            "(an interrupted copy?); replace or remove it"
        )
    if path is None or Path(path).suffix.lower() not in HEADERLESS:
        return
    t = events["t"]
    back = np.flatnonzero(t[1:] < t[:-1])
    if len(back):
        i = int(back[0]) + 1
        raise DatasetError(
            f"{where}: timestamps go backwards ({len(back)} times, first at event {i}: "
            f"{int(t[i - 1])} then {int(t[i])} us): a damaged file or not a "
            f"{Path(path).suffix} event recording; replace or remove it"
        )


class CheckedLoader:
    """An event loader followed by `check_recording` on the events of file-backed items (a
    class, not a closure: DataLoader workers may pickle it)."""

    def __init__(self, load: EventLoad) -> None:
        self.load = load

    def __call__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        events, sensor = self.load(item)
        if item.path is not None:
            check_recording(Path(item.path), events)
        return events, sensor


def checked_sources(sources: Sources) -> Sources:
    """`sources` whose event loader checks each recording it reads (`check_recording`)."""
    if sources.events and sources.events[0].path is not None and not isinstance(
        sources.load_events, CheckedLoader
    ):
        sources.load_events = CheckedLoader(sources.load_events)
    return sources
