"""Torch datasets: events (`EventDataset`), static pictures (`StaticDataset`), and pairs.

`build_paired(cfg, split)` pairs each event sample with a static picture of the same class:
`pairing="class"` draws a random picture from the split's static pool, re-drawn every epoch
(seeded by (seed, epoch, index): reproducible with any number of workers); `pairing="index"`
uses the recording's own picture where the data gives the correspondence, and fails otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from tmkt.datasets import cache as frame_cache
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

FRAMES_VERSION = 1  # bump when frame computation here changes, to invalidate caches


def frames_code_hash() -> str:
    """Hash of `tmkt.events.frames`' source: any change there invalidates frame caches."""
    import tmkt.events.frames as frames

    return hashlib.sha256(Path(frames.__file__).read_bytes()).hexdigest()[:16]


def static_code_hash() -> str:
    """Hash of `tmkt.static.encode`'s source: any change there invalidates plane caches."""
    import tmkt.static.encode as encode

    return hashlib.sha256(Path(encode.__file__).read_bytes()).hexdigest()[:16]


class SampleBatch(Sequence):
    """One batch from a dataset's `__getitems__`: its columns already stacked along dim 0.

    `fast_collate` hands the columns out as they are (no copy). Any other collate function sees
    a sequence of per-sample tuples (views into the columns, the label as int), so torch's
    `default_collate` still gives the same batch, with its stacking copy.
    """

    def __init__(self, columns: tuple[torch.Tensor, ...]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return int(self.columns[0].shape[0])

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        *tensors, labels = self.columns
        return (*(c[k] for c in tensors), int(labels[k]))

    def collate(self) -> list[torch.Tensor]:
        """The batch as `default_collate` would give it: a list of stacked columns."""
        return list(self.columns)


def expanded_over_time(t: torch.Tensor) -> bool:
    """Whether `t` [B, T, C, ...] is one frame per sample expanded over T and C (stride 0)."""
    return t.dim() >= 3 and t.stride(1) == 0 and t.stride(2) == 0 and t.shape[1] > 1


def fast_collate(batch: Any) -> Any:
    """DataLoader `collate_fn`: a `SampleBatch` as it is, anything else by `default_collate`.

    A static column that `__getitems__` gave as an expanded view is materialised here (dense
    [B, T, 2, H, W], as `default_collate` gives it), so the batch can be pinned and written to;
    the trainer's `compact_collate` keeps it compact instead."""
    if isinstance(batch, SampleBatch):
        return [c.contiguous() if expanded_over_time(c) else c for c in batch.collate()]
    return default_collate(batch)


def compact_collate(batch: Any) -> Any:
    """The trainer's `collate_fn`: like `fast_collate`, but a static column expanded over T and
    both channels comes as its compact [B, 1, 1, H, W] frames (dense: pinnable, a T x 2 smaller
    copy to a GPU); `expand_like(static, events)` restores the view after the move."""
    if isinstance(batch, SampleBatch):
        return [c[:, :1, :1] if expanded_over_time(c) else c for c in batch.collate()]
    return default_collate(batch)


def expand_like(static: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
    """A compact [B, 1, 1, H, W] static batch as a view of the events' [B, T, C, H, W] shape
    (a full one is returned as it is)."""
    if static.shape == events.shape:
        return static
    return static.expand(events.shape)


def _labels(targets: list[int], idx: list[int]) -> torch.Tensor:
    return torch.tensor([targets[i] for i in idx], dtype=torch.int64)


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

    def event_items(self, split: str) -> list[Item]:
        """Event items of a split, subsampled to max_per_class if set."""
        items = resolve(self.split.events[split], self.events_by_ref, "event samples")
        return _limit(items, self.cfg.max_per_class, self.cfg.seed)

    def static_items(self, split: str, *, limit: bool = True) -> list[Item]:
        """Static items of a split (the pairing pool when limit=False)."""
        items = resolve(self.split.static[split], self.static_by_ref, "static pictures")
        return _limit(items, self.cfg.max_per_class, self.cfg.seed) if limit else items


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


class EventDataset(_ClassFrames):
    """Event frames `(events (T,2,H,W) tensor, label int)` of one split: float32, or uint8
    counts where the frame cache holds them exactly and `frames_dtype` is "auto"."""

    def __init__(self, prep: Prepared, split: str) -> None:
        _check_split(split)
        cfg = prep.cfg
        self.cfg, self.split = cfg, split
        self.data_split = prep.split  # the full split (save it with `save_split`)
        self.classes = list(prep.classes)
        self.items = prep.event_items(split)
        if not self.items:
            raise DatasetError(f"dataset {cfg.name!r}: split {split!r} holds no event sample")
        self._load = prep.sources.load_events
        self.hw = prep.frame_hw
        self._targets = [self.classes.index(it.label) for it in self.items]
        self.augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
        if cfg.augment and split == "train":
            self.augment = _event_augment()
        self.epoch = 0
        self.draw_seed = cfg.seed  # the trainer sets train.seed (`set_draw_seed`)
        self.cache: frame_cache.FrameCache | None = None
        if cfg.cache:
            self.cache = self._open_cache(prep)

    def cache_settings(self, prep: Prepared) -> dict[str, Any]:
        """Everything that determines the frames (besides the file list)."""
        cfg = self.cfg
        return {
            "dataset": cfg.name,
            "split": self.split,
            "root": str(cfg.root_path.resolve()),
            "T": cfg.T,
            "size": list(self.hw),
            "binning": cfg.binning,
            "norm": cfg.norm,
            "sensor_size": list(prep.sources.sensor_size or []),
            "options": json.loads(json.dumps(cfg.options, sort_keys=True, default=str)),
            "frames_version": FRAMES_VERSION,
            "frames_code": frames_code_hash(),
        }

    def _open_cache(self, prep: Prepared) -> frame_cache.FrameCache:
        cfg = self.cfg
        settings = self.cache_settings(prep)
        h, w = self.hw
        tag = f"{cfg.name}-{self.split}-T{cfg.T}-{h}x{w}-{cfg.binning}-{cfg.norm}"
        fingerprint = _fingerprint(self.items)
        path = frame_cache.cache_file(cfg.cache_path, tag, settings["root"], fingerprint)
        shape = (len(self.items), cfg.T, 2, h, w)
        plan = getattr(self._load, "plan", None)  # sources that load ahead in batches (sim)
        with plan(self.items) if plan is not None else contextlib.nullcontext():
            return frame_cache.FrameCache(
                path, settings, fingerprint, shape, self.decode,
                lambda rows, out: self.decode_many(rows, out=out),
            )

    def _events(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        it = self.items[i]
        try:
            return self._load(it)
        except ValueError as e:
            raise DatasetError(f"{it.path or it.ref}: cannot read events ({e})") from None

    def decode(self, i: int) -> np.ndarray:
        """Frames of sample i computed from its events (no cache, no augmentation)."""
        from tmkt.events.frames import events_to_frames

        events, sensor = self._events(i)
        c = self.cfg
        return events_to_frames(
            events, sensor, c.T, size=self.hw, binning=c.binning, norm=c.norm
        ).astype(np.float32, copy=False)

    def decode_many(self, indices: Sequence[int], out: np.ndarray | None = None) -> np.ndarray:
        """`decode(i)` of every i in `indices`, stacked (B, T, 2, H, W), counted in one batch.

        `out`: a C-contiguous float32 array of that shape to fill (e.g. cache rows).
        """
        from tmkt.events.frames import events_to_frames_many

        c = self.cfg
        many = getattr(self._load, "load_many", None)  # sources that load in batches (sim)
        if many is not None:
            loaded = many([self.items[int(i)] for i in indices])
        else:
            loaded = [self._events(int(i)) for i in indices]
        if out is None:
            out = np.empty((len(loaded), c.T, 2, *self.hw), dtype=np.float32)
        by_sensor: dict[tuple[int, ...], list[int]] = {}
        for k, (_, sensor) in enumerate(loaded):
            by_sensor.setdefault(tuple(int(v) for v in sensor), []).append(k)
        kw = dict(size=self.hw, binning=c.binning, norm=c.norm)
        for sensor, ks in by_sensor.items():
            events = [loaded[k][0] for k in ks]
            if len(by_sensor) == 1:
                events_to_frames_many(events, sensor, c.T, out=out, **kw)
            else:
                out[ks] = events_to_frames_many(events, sensor, c.T, **kw)
        return out

    @property
    def narrow(self) -> bool:
        """Whether cached frames are handed on in the cache's uint8 (`frames_dtype` "auto")."""
        return (
            self.cache is not None and self.augment is None
            and self.cfg.frames_dtype == "auto" and self.cache.dtype == np.uint8
        )

    def frames(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frames of sample i (cached if enabled), augmented in the train split; float32, or
        the cache's exact uint8 counts (see `narrow`)."""
        if self.cache is None:
            x = self.decode(i)
        else:
            x = self.cache.row(i, widen=not self.narrow)
        if self.augment is not None:
            x = self.augment(x, rng if rng is not None else self.rng(i))
        return x

    def frames_many(self, indices: Sequence[int]) -> np.ndarray:
        """`frames(i)` of every i in `indices`, stacked (B, T, 2, H, W) with one copy."""
        idx = [int(i) for i in indices]
        if self.augment is not None:
            out = np.empty((len(idx), self.cfg.T, 2, *self.hw), dtype=np.float32)
            for k, i in enumerate(idx):
                out[k] = self.frames(i)
            return out
        if self.cache is not None:
            return self.cache.rows(idx, widen=not self.narrow)
        return self.decode_many(idx)

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the random draws (augmentation) for an epoch."""
        self.epoch = int(epoch)

    def set_draw_seed(self, seed: int) -> None:
        """Seed of the augmentation draws (the training seed; `data.seed` fixes the split)."""
        self.draw_seed = int(seed)

    def rng(self, i: int, salt: int = 0) -> np.random.Generator:
        """The generator of sample i in the current epoch."""
        return np.random.default_rng([self.draw_seed, self.epoch, int(i), salt])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.frames(i)), self._targets[i]

    def __getitems__(self, indices: list[int]) -> SampleBatch:
        """Samples `indices` as one stacked batch (torch's DataLoader calls this per batch)."""
        idx = [int(i) for i in indices]
        return SampleBatch((torch.from_numpy(self.frames_many(idx)), _labels(self._targets, idx)))


class StaticDataset(_ClassFrames):
    """Encoded static pictures `(static (T,2,H,W) float32 tensor, label int)` of one split."""

    def __init__(
        self, prep: Prepared, split: str, *, items: list[Item] | None = None
    ) -> None:
        _check_split(split)
        cfg = prep.cfg
        self.cfg, self.split = cfg, split
        self.data_split = prep.split
        self.classes = list(prep.classes)
        self.items = prep.static_items(split) if items is None else items
        if not self.items:
            raise DatasetError(f"dataset {cfg.name!r}: split {split!r} holds no static picture")
        self._load = prep.sources.load_static
        self.hw = prep.frame_hw
        self._targets = [self.classes.index(it.label) for it in self.items]
        self.augment = None
        if cfg.augment and split == "train":
            self.augment = _static_augment()
        self.epoch = 0
        self.draw_seed = cfg.seed  # the trainer sets train.seed (`set_draw_seed`)
        self.planes: frame_cache.FrameCache | None = None

    def encode(self, j: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Picture j as a (T, 2, H, W) float32 sequence (augmented in the train split)."""
        from tmkt.static.encode import encode_static

        if self.augment is None and self.planes is not None:  # the plane cache: no Pillow
            out = np.empty((self.cfg.T, 2, *self.hw), dtype=np.float32)
            out[...] = self.planes.array[j]
            return out
        it = self.items[j]
        try:
            img = np.asarray(self._load(it))
        except (OSError, ValueError) as e:
            raise DatasetError(f"{it.path or it.ref}: cannot read picture ({e})") from None
        if self.augment is not None:
            img = self.augment(img, rng if rng is not None else self.rng(j))
        x = encode_static(img, self.cfg.T, self.hw, mode=self.cfg.static_encoding)
        return np.asarray(x, dtype=np.float32)

    def _picture(self, j: int) -> np.ndarray:
        it = self.items[j]
        try:
            return np.asarray(self._load(it))
        except (OSError, ValueError) as e:
            raise DatasetError(f"{it.path or it.ref}: cannot read picture ({e})") from None

    def plane(self, j: int) -> np.ndarray:
        """The (H, W) plane that `encode(j)` repeats over T and both channels (no augmentation)."""
        from tmkt.static.encode import encode_static

        x = encode_static(self._picture(j), 1, self.hw, mode=self.cfg.static_encoding)
        return np.asarray(x[0, 0], dtype=np.float32)

    def open_plane_cache(self) -> frame_cache.FrameCache:
        """Open (verifying) or build a `.npy` (P, H, W) of every picture's plane in `cache_dir`.

        Used by `encode_many` (and so by the batched `__getitems__`) without augmentation.
        Identified by the settings, the pictures' refs and labels, the file size and mtime of
        pictures with a path and a hash of the bytes of those without (in-memory pictures).
        """
        cfg = self.cfg
        h, w = self.hw
        digest = hashlib.blake2b(digest_size=16)
        fingerprint = []
        for j, it in enumerate(self.items):
            if it.path is not None and Path(it.path).is_file():
                st = Path(it.path).stat()
                fingerprint.append([it.ref, it.label, st.st_size, st.st_mtime_ns])
            else:
                img = np.ascontiguousarray(self._picture(j))
                digest.update(f"{img.dtype.str}{img.shape}".encode())
                digest.update(img.tobytes())
                fingerprint.append([it.ref, it.label, None, None])
        settings = {
            "kind": "static planes",
            "dataset": cfg.name,
            "split": self.split,
            "static_root": str(cfg.static_root_path.resolve()),
            "size": [h, w],
            "encoding": cfg.static_encoding,
            "options": json.loads(json.dumps(cfg.options, sort_keys=True, default=str)),
            "in_memory_pictures": digest.hexdigest(),
            "static_code": static_code_hash(),
        }
        tag = f"{cfg.name}-static-{self.split}-{h}x{w}-{cfg.static_encoding}-P{len(self.items)}"
        path = frame_cache.cache_file(cfg.cache_path, tag, settings["static_root"], fingerprint)
        self.planes = frame_cache.FrameCache(
            path, settings, fingerprint, (len(self.items), h, w), self.plane
        )
        return self.planes

    def encode_many(self, indices: Sequence[int]) -> np.ndarray:
        """`encode(j)` of every j in `indices` (own draws), stacked (B, T, 2, H, W).

        Without augmentation each distinct picture's plane is read from the plane cache (or
        encoded once) and written into the batch in one broadcast.
        """
        idx = [int(j) for j in indices]
        out = np.empty((len(idx), self.cfg.T, 2, *self.hw), dtype=np.float32)
        if self.augment is not None:
            for k, j in enumerate(idx):
                out[k] = self.encode(j)
            return out
        out[...] = self.planes_many(idx)[:, None, None]
        return out

    def planes_many(self, indices: Sequence[int]) -> np.ndarray:
        """The (B, H, W) planes that `encode_many` (without augmentation) repeats over T and
        both channels: from the plane cache, or each distinct picture encoded once."""
        idx = [int(j) for j in indices]
        if self.planes is not None:
            return self.planes.rows(idx)
        if not idx:
            return np.empty((0, *self.hw), dtype=np.float32)
        uniq, inverse = np.unique(np.asarray(idx, dtype=np.intp), return_inverse=True)
        return np.stack([self.plane(int(j)) for j in uniq])[inverse.reshape(-1)]

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the random draws for an epoch."""
        self.epoch = int(epoch)

    def set_draw_seed(self, seed: int) -> None:
        """Seed of the augmentation draws (the training seed; `data.seed` fixes the split)."""
        self.draw_seed = int(seed)

    def rng(self, j: int, salt: int = 0) -> np.random.Generator:
        """The generator of picture j in the current epoch."""
        return np.random.default_rng([self.draw_seed, self.epoch, int(j), 1000 + salt])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.encode(j)), self._targets[j]

    def __getitems__(self, indices: list[int]) -> SampleBatch:
        """Pictures `indices` as one stacked batch (torch's DataLoader calls this per batch)."""
        idx = [int(j) for j in indices]
        return SampleBatch((torch.from_numpy(self.encode_many(idx)), _labels(self._targets, idx)))


class PairedDataset(Dataset):
    """`(static (T,2,H,W), events (T,2,H,W), label)`: each recording with a same-class picture."""

    def __init__(self, prep: Prepared, split: str) -> None:
        cfg = prep.cfg
        self.cfg, self.split = cfg, split
        self.events = EventDataset(prep, split)
        self.data_split = prep.split
        self.classes = self.events.classes
        pool = prep.static_items(split, limit=False)
        self.static = StaticDataset(prep, split, items=pool)
        self.pairing = cfg.pairing
        self.epoch = 0
        self.draw_seed = cfg.seed  # the trainer sets train.seed (`set_draw_seed`)
        self.fast_draws = True  # batched pairing draws (turned off if numpy's stream differs)
        if cfg.pairing == "index":
            self.partner = self._index_partners(prep, pool)
        else:
            self.pools = self._class_pools(pool)
        if cfg.cache and self.static.augment is None:
            self.static.open_plane_cache()

    def _class_pools(self, pool: list[Item]) -> dict[int, np.ndarray]:
        by_class: dict[int, list[int]] = {}
        for j, it in enumerate(pool):
            by_class.setdefault(self.classes.index(it.label), []).append(j)
        need = sorted(set(self.events.targets))
        empty = [self.classes[c] for c in need if c not in by_class]
        if empty:
            raise DatasetError(
                f"dataset {self.cfg.name!r}, split {self.split!r}: no static picture to pair "
                f"with classes {empty}"
            )
        return {c: np.asarray(v) for c, v in by_class.items()}

    def _index_partners(self, prep: Prepared, pool: list[Item]) -> np.ndarray:
        if prep.sources.index_error:
            raise DatasetError(f"pairing='index' is unavailable: {prep.sources.index_error}")
        by_key = {it.key: j for j, it in enumerate(pool) if it.key is not None}
        missing = [e for e in self.events.items if e.key not in by_key]
        if missing:
            names = ", ".join(str(e.path or e.ref) for e in missing[:5])
            raise DatasetError(
                f"pairing='index': {len(missing)} of {len(self.events.items)} recordings in "
                f"split {self.split!r} have no known static picture (e.g. {names}); the "
                "correspondence is only known where file names give it and the picture exists"
            )
        return np.asarray([by_key[e.key] for e in self.events.items])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(2, H, W)."""
        return self.events.in_shape

    @property
    def targets(self) -> list[int]:
        """Class index of every sample."""
        return self.events.targets

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the pairing draws and augmentations for an epoch."""
        self.epoch = int(epoch)
        self.events.set_epoch(epoch)
        self.static.set_epoch(epoch)

    def set_draw_seed(self, seed: int) -> None:
        """Seed of the pairing and augmentation draws: the training seed, so each seed of an
        experiment draws its own partners (`data.seed` fixes the split only)."""
        self.draw_seed = int(seed)
        self.events.set_draw_seed(seed)
        self.static.set_draw_seed(seed)

    def partner_of(self, i: int) -> int:
        """Index (into `self.static.items`) of the picture paired with sample i this epoch."""
        if self.pairing == "index":
            return int(self.partner[i])
        pool = self.pools[self.events._targets[i]]
        rng = np.random.default_rng([self.draw_seed, self.epoch, int(i), 7])
        return int(pool[rng.integers(len(pool))])

    def partners_of(self, indices: Sequence[int]) -> list[int]:
        """`partner_of(i)` for every i, the class draws computed for the batch at once.

        `tmkt.datasets.draws` reproduces numpy's draws bit for bit; the first one is checked
        against `partner_of` every batch, and a mismatch switches to numpy for good.
        """
        idx = [int(i) for i in indices]
        if self.pairing == "index":
            return [int(self.partner[i]) for i in idx]
        from tmkt.datasets.draws import draw_many

        targets = self.events._targets
        pools = [self.pools[targets[i]] for i in idx]
        got = None
        if self.fast_draws and idx:
            entropy = [[self.draw_seed, self.epoch, i, 7] for i in idx]
            got = draw_many(entropy, [len(p) for p in pools])
            if got is not None and int(pools[0][got[0]]) != self.partner_of(idx[0]):
                self.fast_draws, got = False, None
        if got is None:
            return [self.partner_of(i) for i in idx]
        return [int(p[k]) for p, k in zip(pools, got, strict=True)]

    def __len__(self) -> int:
        return len(self.events)

    def _pair(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(static, events) frames of sample i with picture j (augmented with i's draws; the
        events with the same draws as `EventDataset` gives `dvs`, so methods differ by method)."""
        events, static = self.events, self.static
        ev = events.frames(i)
        st = static.encode(j, static.rng(i, salt=3) if static.augment is not None else None)
        return st, ev

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        st, ev = self._pair(i, self.partner_of(i))
        return torch.from_numpy(st), torch.from_numpy(ev), self.events._targets[i]

    def __getitems__(self, indices: list[int]) -> SampleBatch:
        """Samples `indices` as one stacked batch (torch's DataLoader calls this per batch).

        Same partners, draws and values as `__getitem__`. Without augmentation the events come
        from the frame cache in one read and the pictures from the plane cache in one read; the
        static batch is then each plane expanded over T and both channels (a stride-0 view, not
        T x 2 copies: the methods and `Batch.to` keep it unexpanded until a network needs it).
        """
        idx = [int(i) for i in indices]
        partners = self.partners_of(idx)
        labels = _labels(self.events._targets, idx)
        if self.events.augment is None and self.static.augment is None:
            ev = self.events.frames_many(idx)
            planes = torch.from_numpy(self.static.planes_many(partners))
            st = planes[:, None, None].expand(len(idx), self.cfg.T, 2, *self.events.hw)
            return SampleBatch((st, torch.from_numpy(ev), labels))
        ev = np.empty((len(idx), self.cfg.T, 2, *self.events.hw), dtype=np.float32)
        st = np.empty_like(ev)
        for k, (i, j) in enumerate(zip(idx, partners, strict=True)):
            st[k], ev[k] = self._pair(i, j)
        return SampleBatch((torch.from_numpy(st), torch.from_numpy(ev), labels))


def _event_augment() -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    from tmkt.events.augment import augment_frames

    return augment_frames


def _static_augment() -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    from tmkt.static.augment import augment_image

    return augment_image


def build_events(cfg: DataConfig, split: str) -> EventDataset:
    """Event frames of a split (for evaluation and the event-only baseline)."""
    _check_split(split)
    return EventDataset(prepare(cfg), split)


def build_static(cfg: DataConfig, split: str) -> StaticDataset:
    """Encoded static pictures of a split (the finetune baseline's first phase)."""
    _check_split(split)
    return StaticDataset(prepare(cfg), split)


def build_paired(cfg: DataConfig, split: str) -> PairedDataset:
    """Paired (static, events, label) samples of a split (SPEC section 2)."""
    _check_split(split)
    return PairedDataset(prepare(cfg), split)


def write_split(cfg: DataConfig, path: str | Path) -> Path:
    """Save the split `cfg` gives (all three splits, events and pictures) as JSON."""
    return save_split(prepare(cfg).split, path)
