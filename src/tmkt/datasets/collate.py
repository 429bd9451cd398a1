"""Batches without copies: a dataset's `__getitems__` hands its columns to the DataLoader as
one `SampleBatch`; static pictures travel as one frame per sample expanded over T and C."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate


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
