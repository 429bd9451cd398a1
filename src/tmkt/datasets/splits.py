"""Deterministic stratified train/val/test splits of event and static items; JSON save/load.

Rules: items are sorted by ref, then shuffled per class with a generator seeded by
(seed, crc32(class name)), so a split depends on neither file-system order nor the class set.
An official test split is kept; without one, `test_fraction` of each class becomes test. Then
`val_fraction` of what is left becomes val (at least one sample when the class has >= 2).
Static items whose key matches an event recording follow that recording's split, so no picture
of a val/test recording is in the static training pool.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import defaultdict
from collections.abc import Container, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmkt.datasets.base import DatasetError, Item

SPLITS = ("train", "val", "test")
VERSION = 1


@dataclass
class Split:
    """Refs per split and class, for events and static pictures, plus the settings used."""

    classes: list[str]
    events: dict[str, dict[str, list[str]]]
    static: dict[str, dict[str, list[str]]]
    meta: dict[str, Any] = field(default_factory=dict)

    def event_refs(self, split: str) -> list[str]:
        """All event refs of a split, sorted by class then ref."""
        return [r for c in self.classes for r in self.events[split].get(c, [])]

    def static_refs(self, split: str) -> list[str]:
        """All static refs of a split, sorted by class then ref."""
        return [r for c in self.classes for r in self.static[split].get(c, [])]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"version": VERSION, "classes": self.classes, "meta": self.meta,
                "events": self.events, "static": self.static}


def class_rng(seed: int, label: str, salt: int = 0) -> np.random.Generator:
    """A generator for one class, independent of the other classes."""
    return np.random.default_rng([int(seed), zlib.crc32(label.encode()), salt])


def stratify(
    items: Sequence[Item], *, val_fraction: float, test_fraction: float | None, seed: int
) -> dict[str, list[Item]]:
    """Split items per class: official "test" items stay test; `test_fraction` (None: no test
    draw) then `val_fraction` of the rest are drawn per class."""
    out: dict[str, list[Item]] = {s: [] for s in SPLITS}
    by_class: dict[str, list[Item]] = defaultdict(list)
    for it in sorted(items, key=lambda i: i.ref):
        if it.official == "test":
            out["test"].append(it)
        else:
            by_class[it.label].append(it)
    for label in sorted(by_class):
        pool = by_class[label]
        order = [pool[i] for i in class_rng(seed, label).permutation(len(pool))]
        n_test = 0 if test_fraction is None else _count(len(order), test_fraction)
        out["test"] += order[:n_test]
        rest = order[n_test:]
        n_val = _count(len(rest), val_fraction)
        out["val"] += rest[:n_val]
        out["train"] += rest[n_val:]
    return out


def _count(n: int, fraction: float) -> int:
    """round(n * fraction), at least 1 when fraction > 0 and n >= 2, never all n."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def make_split(
    events: Sequence[Item],
    static: Sequence[Item],
    classes: Sequence[str],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    meta: dict[str, Any] | None = None,
) -> Split:
    """Split event items, then static items (counterparts follow their recording's split)."""
    keep = set(classes)
    ev = [e for e in events if e.label in keep]
    st = [s for s in static if s.label in keep]
    ev_test = None if any(e.official == "test" for e in ev) else test_fraction
    ev_split = stratify(ev, val_fraction=val_fraction, test_fraction=ev_test, seed=seed)
    key_split: dict[Hashable, str] = {
        e.key: name for name, its in ev_split.items() for e in its if e.key is not None
    }
    linked = {s: [] for s in SPLITS}
    free: list[Item] = []
    for s in st:
        if s.key is not None and s.key in key_split:
            linked[key_split[s.key]].append(s)
        else:
            free.append(s)
    st_test = None if any(s.official == "test" for s in st) else test_fraction
    st_split = stratify(free, val_fraction=val_fraction, test_fraction=st_test, seed=seed + 1)
    for name in SPLITS:
        st_split[name] += linked[name]
    return Split(
        list(classes), _group(ev_split, classes), _group(st_split, classes), dict(meta or {})
    )


def _group(split: dict[str, list[Item]], classes: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for name, items in split.items():
        per: dict[str, list[str]] = {c: [] for c in classes}
        for it in items:
            per[it.label].append(it.ref)
        out[name] = {c: sorted(refs) for c, refs in per.items()}
    return out


def save_split(split: Split, path: str | Path) -> Path:
    """Write the split as JSON (atomically: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(split.to_dict(), indent=1))
    os.replace(tmp, path)
    return path


def load_split(path: str | Path) -> Split:
    """Read a split written by `save_split`; a malformed file is a DatasetError naming it."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        if d.get("version") != VERSION:
            raise ValueError(f"version {d.get('version')!r}, expected {VERSION}")
        split = Split(list(d["classes"]), d["events"], d["static"], d.get("meta", {}))
        for part in (split.events, split.static):
            if set(part) != set(SPLITS):
                raise ValueError(f"splits {sorted(part)}, expected {list(SPLITS)}")
    except FileNotFoundError:
        raise DatasetError(f"split file not found: {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DatasetError(f"{path}: not a valid split file ({e})") from None
    return split


def resolve(refs_by_class: dict[str, list[str]], items: dict[str, Item], what: str) -> list[Item]:
    """Map refs back to items; refs that no longer exist are a DatasetError listing them."""
    missing = [r for refs in refs_by_class.values() for r in refs if r not in items]
    if missing:
        raise DatasetError(
            f"split file names {len(missing)} {what} that are not in the data, e.g. "
            f"{', '.join(missing[:5])}"
        )
    return [items[r] for refs in refs_by_class.values() for r in refs]


def check_eval_split(split: Split, path: str | Path, *, dataset: str, name: str) -> None:
    """Raise a DatasetError naming `path` when the split file records another dataset than
    `dataset` or holds no event recording in split `name` (e.g. no test recordings)."""
    recorded = split.meta.get("dataset")
    if recorded is not None and recorded != dataset:
        raise DatasetError(f"split file {path} is a split of dataset {recorded!r}, not {dataset!r}")
    if not split.event_refs(name):
        raise DatasetError(f"split file {path} has no {name} recordings")


def restrict_events(split: Split, name: str, present: Container[str]) -> tuple[Split, list[str]]:
    """`split` with only the event refs of split `name` that are in `present` (e.g. a copy of the
    data holding part of it), and the refs left out. Other splits are unchanged."""
    kept = {c: [r for r in refs if r in present] for c, refs in split.events[name].items()}
    missing = [r for refs in split.events[name].values() for r in refs if r not in present]
    events = {**split.events, name: kept}
    return Split(list(split.classes), events, split.static, dict(split.meta)), missing
