"""Preparation shared by every dataset of a config: sources, classes matched by name, the split,
and the `max_per_class` subset; `ClassFrames`, what the event and static datasets share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from tmkt.datasets.base import DatasetError, Item, Sources
from tmkt.datasets.config import SPLITS, DataConfig
from tmkt.datasets.registry import get_sources
from tmkt.datasets.splits import (
    Split,
    check_eval_split,
    class_rng,
    load_split,
    make_split,
    resolve,
    save_split,
)


@dataclass
class Prepared:
    """Sources, matched classes and the split of one config (shared by the three builders)."""

    cfg: DataConfig
    sources: Sources
    classes: list[str]
    split: Split
    events_by_ref: dict[str, Item]
    static_by_ref: dict[str, Item]

    @property
    def frame_hw(self) -> tuple[int, int]:
        """(H, W) of every frame: cfg.size, else the sensor's."""
        if self.cfg.size is not None:
            return self.cfg.size
        if self.sources.sensor_size is None:
            raise DatasetError(
                f"dataset {self.cfg.name!r}: recordings have different sensor sizes; set size"
            )
        w, h = self.sources.sensor_size
        return (h, w)

    @property
    def subset_seed(self) -> int:
        """Seed of the `max_per_class` draw (`subset_seed`, else `data.seed`; the trainer
        passes the run's train.seed when `subset_seed` is unset)."""
        c = self.cfg
        return c.subset_seed if c.subset_seed is not None else c.seed

    def event_items(self, split: str) -> list[Item]:
        """Event items of a split; the train split subsampled to max_per_class if set (the
        event budget: val and test stay whole, so budgets are scored on the same data)."""
        items = resolve(self.split.events[split], self.events_by_ref, "event samples")
        if split != "train":
            return items
        return _limit(items, self.cfg.max_per_class, self.subset_seed)

    def static_items(self, split: str, *, limit: bool = True) -> list[Item]:
        """Static items of a split (the pairing pool when limit=False; the train split
        subsampled to max_per_class otherwise)."""
        items = resolve(self.split.static[split], self.static_by_ref, "static pictures")
        if not limit or split != "train":
            return items
        return _limit(items, self.cfg.max_per_class, self.subset_seed)

def match_classes(sources: Sources, intersection: bool) -> list[str]:
    """Class names present in both modalities; a mismatch is an error listing the classes."""
    ev = {e.label for e in sources.events}
    st = {s.label for s in sources.static}
    if sources.static_error is not None and not st:  # events only (see Sources.static_error)
        return sorted(ev)
    if ev == st or intersection:
        classes = sorted(ev & st)
        if not classes:
            raise DatasetError(f"dataset {sources.name!r}: no class has both events and pictures")
        return classes
    raise DatasetError(
        f"dataset {sources.name!r}: event and static classes differ (matched by name).\n"
        f"  only in events: {sorted(ev - st)}\n  only in static: {sorted(st - ev)}\n"
        "Fix the folders, or set class_intersection=True to keep only the common classes."
    )

def prepare(cfg: DataConfig) -> Prepared:
    """Load sources, match classes and make (or load) the split."""
    sources = get_sources(cfg)
    classes = match_classes(sources, cfg.class_intersection)
    if cfg.split_file is not None:
        split = load_split(cfg.split_file)
        check_eval_split(split, cfg.split_file, dataset=cfg.name, name="train")
        extra = sorted(set(split.classes) - set(classes))
        if extra:
            raise DatasetError(f"split file {cfg.split_file} has classes not in the data: {extra}")
        classes = list(split.classes)
    else:
        meta = {
            "dataset": cfg.name,
            "seed": cfg.seed,
            "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction,
        }
        split = make_split(
            sources.events,
            sources.static,
            classes,
            val_fraction=cfg.val_fraction,
            test_fraction=cfg.test_fraction,
            seed=cfg.seed,
            meta=meta,
        )
    return Prepared(
        cfg,
        sources,
        classes,
        split,
        {e.ref: e for e in sources.events},
        {s.ref: s for s in sources.static},
    )

def _limit(items: list[Item], max_per_class: int | None, seed: int) -> list[Item]:
    if max_per_class is None:
        return items
    by_class: dict[str, list[Item]] = {}
    for it in items:
        by_class.setdefault(it.label, []).append(it)
    out: list[Item] = []
    for label, its in by_class.items():
        if len(its) > max_per_class:
            keep = np.sort(class_rng(seed, label, 1).choice(len(its), max_per_class, False))
            its = [its[i] for i in keep]
        out += its
    return out

def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

def _fingerprint(items: list[Item]) -> list[list[Any]]:
    out = []
    for it in items:
        if it.path is not None and Path(it.path).is_file():
            st = Path(it.path).stat()
            out.append([it.ref, st.st_size, st.st_mtime_ns])
        else:
            out.append([it.ref, None, None])
    return out

class _ClassFrames(Dataset):
    """What the event and static datasets share: classes, frame shape (2, H, W), targets."""

    classes: list[str]
    hw: tuple[int, int]
    _targets: Sequence[int]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(2, H, W)."""
        return (2, *self.hw)

    @property
    def targets(self) -> list[int]:
        """Class index of every sample."""
        return list(self._targets)

def write_split(cfg: DataConfig, path: str | Path) -> Path:
    """Save the split `cfg` gives (all three splits, events and pictures) as JSON."""
    return save_split(prepare(cfg).split, path)
