"""Which training samples each epoch sees: one pass (torch's DistributedSampler), or a fixed
number of steps drawn from seeded permutations laid end to end (`optim.steps_per_epoch`)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class CyclicSampler(Sampler[int]):
    """`length` indices per rank for `epoch`: positions [epoch * total, (epoch + 1) * total) of
    permutations of range(n) laid end to end (permutation r seeded by (seed, r)), rank k taking
    every `world`-th position from k; total = length * world.

    So an epoch is a fixed number of steps whatever n: a small dataset is walked several times
    (each sample once per pass, a new order each pass), a large one in part, continuing in the
    next epoch. The indices depend only on (n, length, seed, epoch, rank, world): a resumed run
    draws exactly what an uninterrupted one draws.
    """

    def __init__(
        self, n: int, length: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1
    ) -> None:
        if n < 1:
            raise ValueError("CyclicSampler needs a non-empty dataset")
        self.n, self.length, self.seed, self.epoch = int(n), int(length), int(seed), int(epoch)
        self.rank, self.world = int(rank), int(world)

    def _perm(self, r: int) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + r * 7_919 + 17) % 2**63)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[int]:
        total = self.length * self.world
        start = self.epoch * total
        first, last = start // self.n, (start + total - 1) // self.n
        walk = torch.cat([self._perm(r) for r in range(first, last + 1)])
        window = walk[start - first * self.n : start - first * self.n + total]
        return iter(window[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        return self.length
