"""Schedules of the expected event fraction over training (r_m for TSM, P for sliding).

A schedule maps progress = iteration / total in [0, 1] to a value in [0, 1]. The default
[ours, SPEC §3] is `power` with k = 3, the curve He et al. use for their whole-sequence
replacement probability P = min(1, progress^3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCHEDULES",
    "ConstantSchedule",
    "PowerSchedule",
    "Schedule",
    "build_schedule",
    "progress_of",
]

SCHEDULES = ("power", "linear", "constant")


def _unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def progress_of(iteration: int, total: int) -> float:
    """Training progress iteration / total, clipped to [0, 1]."""
    if total < 1:
        raise ValueError(f"total iterations must be >= 1, got {total!r}")
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration!r}")
    return min(1.0, iteration / total)


class Schedule:
    """Base: call with progress in [0, 1] (clipped), or use `at(iteration, total)`."""

    def _at_progress(self, progress: float) -> float:
        raise NotImplementedError

    def __call__(self, progress: float) -> float:
        progress = float(progress)
        if math.isnan(progress):
            raise ValueError("progress is NaN")
        return self._at_progress(min(1.0, max(0.0, progress)))

    def at(self, iteration: int, total: int) -> float:
        """The value at `iteration` of `total` iterations."""
        return self(progress_of(iteration, total))


@dataclass(frozen=True)
class PowerSchedule(Schedule):
    """start + (end - start) * progress^k; k = 3 from 0 to 1 by default, k = 1 is linear."""

    k: float = 3.0
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        if not self.k > 0:
            raise ValueError(f"power k must be > 0, got {self.k!r}")
        _unit("start", self.start)
        _unit("end", self.end)

    def _at_progress(self, progress: float) -> float:
        return self.start + (self.end - self.start) * progress**self.k


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """The same value throughout training."""

    value: float = 0.5

    def __post_init__(self) -> None:
        _unit("constant value", self.value)

    def _at_progress(self, progress: float) -> float:
        return self.value


def build_schedule(kind: str = "power", **kw: Any) -> Schedule:
    """Schedule by name: "power" (k=3, start=0, end=1), "linear" (start, end) or
    "constant" (value); unknown kinds or keywords raise a ValueError listing the valid ones."""
    if kind == "power":
        allowed: tuple[str, ...] = ("k", "start", "end")
    elif kind == "linear":
        allowed = ("start", "end")
    elif kind == "constant":
        allowed = ("value",)
    else:
        raise ValueError(f"unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(
            f"schedule {kind!r} got unknown options {unknown}; valid: {', '.join(allowed)}"
        )
    if kind == "power":
        return PowerSchedule(**kw)
    if kind == "linear":
        return PowerSchedule(k=1.0, **kw)
    return ConstantSchedule(**kw)
