"""Paired datasets: each event sample with a static picture of the same class.

`build_paired(cfg, split)` pairs each event sample with a static picture of the same class:
`pairing="class"` draws a random picture from the split's static pool, re-drawn every epoch
(seeded by (seed, epoch, index): reproducible with any number of workers); `pairing="index"`
uses the recording's own picture where the data gives the correspondence, and fails otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tmkt.datasets.base import DatasetError, Item
from tmkt.datasets.collate import SampleBatch, _labels
from tmkt.datasets.config import DataConfig
from tmkt.datasets.event_frames import EventDataset
from tmkt.datasets.prepare import Prepared, _check_split, prepare
from tmkt.datasets.static_frames import StaticDataset


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
            self.static.open_plane_cache()  # none with static_encoding "sim" (its frame cache)

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
        With ``static_encoding: sim`` the static batch is full frames from its own frame cache.
        """
        idx = [int(i) for i in indices]
        partners = self.partners_of(idx)
        labels = _labels(self.events._targets, idx)
        if self.events.augment is None and self.static.augment is None:
            ev = self.events.frames_many(idx)
            if self.static.sim is not None:
                st_full = torch.from_numpy(self.static.encode_many(partners))
                return SampleBatch((st_full, torch.from_numpy(ev), labels))
            planes = torch.from_numpy(self.static.planes_many(partners))
            st = planes[:, None, None].expand(len(idx), self.cfg.T, 2, *self.events.hw)
            return SampleBatch((st, torch.from_numpy(ev), labels))
        ev = np.empty((len(idx), self.cfg.T, 2, *self.events.hw), dtype=np.float32)
        st = np.empty_like(ev)
        for k, (i, j) in enumerate(zip(idx, partners, strict=True)):
            st[k], ev[k] = self._pair(i, j)
        return SampleBatch((torch.from_numpy(st), torch.from_numpy(ev), labels))

def build_paired(cfg: DataConfig, split: str) -> PairedDataset:
    """Paired (static, events, label) samples of a split (SPEC section 2)."""
    _check_split(split)
    return PairedDataset(prepare(cfg), split)
