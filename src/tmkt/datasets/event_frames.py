"""Event frames of one split (`EventDataset`): recordings -> (T, 2, H, W) count frames, through
the frame cache, augmented in the train split; `build_events`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from tmkt.datasets import cache as frame_cache
from tmkt.datasets.base import DatasetError
from tmkt.datasets.collate import SampleBatch, _labels
from tmkt.datasets.config import DataConfig
from tmkt.datasets.prepare import Prepared, _check_split, _ClassFrames, _fingerprint, prepare

FRAMES_VERSION = 1  # bump when frame computation here changes, to invalidate caches

def frames_code_hash() -> str:
    """Hash of `tmkt.events.frames`' source: any change there invalidates frame caches."""
    import tmkt.events.frames as frames

    return frame_cache.source_hash(frames)

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

    def cache_tag(self) -> str:
        """The readable part of the frame cache's file name."""
        cfg = self.cfg
        h, w = self.hw
        return f"{cfg.name}-{self.split}-T{cfg.T}-{h}x{w}-{cfg.binning}-{cfg.norm}"

    def cache_fingerprint(self) -> list[list[Any]]:
        """The sample list the frame cache is valid for."""
        return _fingerprint(self.items)

    def _open_cache(self, prep: Prepared) -> frame_cache.FrameCache:
        cfg = self.cfg
        settings = self.cache_settings(prep)
        h, w = self.hw
        tag = self.cache_tag()
        fingerprint = self.cache_fingerprint()
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

def _event_augment() -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    from tmkt.events.augment import augment_frames

    return augment_frames

def build_events(cfg: DataConfig, split: str) -> EventDataset:
    """Event frames of a split (for evaluation and the event-only baseline)."""
    _check_split(split)
    return EventDataset(prepare(cfg), split)
