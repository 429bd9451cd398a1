"""Static pictures for a static-only training phase (the `finetune` baseline's first phase).

`StaticPoolDataset` walks the split's whole static pool (not just the pictures paired with the
recordings): an epoch holds as many pictures as the split has event recordings, so a static
epoch costs the optimiser the same steps as an event epoch; consecutive epochs continue
through one seeded permutation of the pool, and a new permutation starts when it is used up.
"""

from __future__ import annotations

import numpy as np
import torch

from tmkt.datasets.base import DatasetError
from tmkt.datasets.collate import SampleBatch
from tmkt.datasets.prepare import Prepared, _check_split
from tmkt.datasets.static_frames import StaticDataset


class StaticPoolDataset(StaticDataset):
    """`(static (T,2,H,W), label)`: epoch e, sample i is picture `order[e * n + i]` of the pool,
    `order` being seeded permutations of the pool laid end to end (n = event recordings)."""

    def __init__(self, prep: Prepared, split: str) -> None:
        _check_split(split)
        super().__init__(prep, split, items=prep.static_items(split, limit=False))
        self.length = len(prep.event_items(split))
        if self.length == 0:
            raise DatasetError(f"dataset {prep.cfg.name!r}: split {split!r} holds no event sample")
        self._perms: dict[int, np.ndarray] = {}
        if prep.cfg.cache and self.augment is None:
            self.open_plane_cache()  # none with static_encoding "sim" (its frame cache)

    def picture(self, i: int) -> int:
        """Index into the pool of sample i in the current epoch."""
        k = self.epoch * self.length + int(i)
        n_pool = len(self.items)
        rnd, pos = divmod(k, n_pool)
        if rnd not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            rng = np.random.default_rng([self.draw_seed, rnd, 11])
            self._perms[rnd] = rng.permutation(n_pool)
        return int(self._perms[rnd][pos])

    def set_epoch_length(self, n: int) -> None:
        """Pictures per epoch (the trainer sets steps x batch with `optim.steps_per_epoch`), so
        an epoch of fixed steps draws that many pictures, none repeated within it."""
        self.length = int(n)

    def set_draw_seed(self, seed: int) -> None:
        super().set_draw_seed(seed)
        self._perms.clear()

    @property
    def targets(self) -> list[int]:
        """Class index of every sample in the current epoch."""
        return [self._targets[self.picture(i)] for i in range(self.length)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = self.picture(i)
        return torch.from_numpy(self.encode(j)), self._targets[j]

    def __getitems__(self, indices: list[int]) -> SampleBatch:
        """Samples `indices` of the current epoch as one stacked batch."""
        return super().__getitems__([self.picture(i) for i in indices])
