"""Time-step Mixup (SPEC §3) and the two baseline mixers (untruncated, sliding).

Batches are `[B, T, ...]` as the loader gives them. A mixer draws a boolean event mask `[B, T]`
(True where frame t is taken from the event stream); `mix_by_mask` applies it and derives the
MAG target (the mask as float) and the MRP target (the fraction of event frames).

TSM: per sample draw u_t ~ U(0,1), t = 0..T-1; t* = first t with u_t < p (0-based), or T when no
u_t < p (no replacement). Frames t >= t* come from events, so a sequence never switches back.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from scipy.optimize import brentq

__all__ = [
    "MIXERS",
    "Mixed",
    "expected_event_fraction",
    "mix",
    "mix_by_mask",
    "sample_mask",
    "sample_tstar",
    "sliding_mask",
    "solve_p",
    "tsm_mask",
    "tstar_to_mask",
    "untruncated_mask",
]

MIXERS = ("tsm", "untruncated", "sliding")


class Mixed(NamedTuple):
    """A mixed batch: `x` [B,T,...], `mag_target` [B,T] (1 = event frame), `mrp_target` [B]."""

    x: torch.Tensor
    mag_target: torch.Tensor
    mrp_target: torch.Tensor


def _check_T(T: int) -> int:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    return T


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def _check_batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
        raise ValueError(f"batch must be an integer >= 0, got {batch!r}")
    return batch


def expected_event_fraction(p: float, T: int) -> float:
    """E[fraction of event frames] under TSM with per-step probability p:
    r_m = 1 - (1-p)(1-(1-p)^T)/(pT) (the expected number of static frames is sum_t (1-p)^t)."""
    p = _check_unit("p", p)
    T = _check_T(T)
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    # 1 - (1-p)^T computed without cancellation for small p.
    one_minus_q_T = -math.expm1(T * math.log1p(-p))
    return 1.0 - (1.0 - p) * one_minus_q_T / (p * T)


def solve_p(r_m: float, T: int) -> float:
    """The per-step replacement probability p whose expected event fraction is r_m (SPEC §3).

    `expected_event_fraction` rises strictly from 0 (p -> 0) to 1 (p = 1), so the root is unique;
    it is found by Brent's method to 1e-12. r_m = 0 -> p = 0, r_m = 1 -> p = 1.
    """
    r_m = _check_unit("r_m", r_m)
    T = _check_T(T)
    if r_m == 0.0:
        return 0.0
    if r_m == 1.0:
        return 1.0
    if T == 1:
        return r_m  # one frame: replaced with probability p
    lo = 1e-300  # expected_event_fraction(lo) ~ lo (T+1)/2 < any representable r_m > 0 of interest
    if expected_event_fraction(lo, T) >= r_m:
        return lo
    return float(brentq(lambda p: expected_event_fraction(p, T) - r_m, lo, 1.0, xtol=1e-14))


def _rand(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
) -> torch.Tensor:
    if device is None and generator is not None:
        device = generator.device
    return torch.rand(shape, generator=generator, device=device)


def sample_tstar(
    batch: int,
    T: int,
    p: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw the 0-based replacement point t* per sample: LongTensor [B] in 0..T (T = none).

    u_t ~ U(0,1) per step and sample; t* = first t with u_t < p. The device defaults to the
    generator's device (CPU without a generator).
    """
    batch, T, p = _check_batch(batch), _check_T(T), _check_unit("p", p)
    hit = _rand((batch, T), generator, device) < p
    # Append an always-true column: argmax (first maximum) then returns T when no step hit.
    sentinel = torch.ones((batch, 1), dtype=torch.bool, device=hit.device)
    return torch.cat([hit, sentinel], dim=1).to(torch.uint8).argmax(dim=1).long()


def tstar_to_mask(tstar: torch.Tensor, T: int) -> torch.Tensor:
    """Boolean event mask [B,T] from 0-based t* [B]: frame t is an event frame iff t >= t*."""
    T = _check_T(T)
    if tstar.dim() != 1:
        raise ValueError(f"tstar must be 1-D [B], got shape {tuple(tstar.shape)}")
    if tstar.numel() and (int(tstar.min()) < 0 or int(tstar.max()) > T):
        raise ValueError(f"tstar must lie in 0..{T} (T = no replacement)")
    steps = torch.arange(T, device=tstar.device)
    return steps.unsqueeze(0) >= tstar.unsqueeze(1)


def tsm_mask(
    batch: int,
    T: int,
    r_m: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """TSM event mask [B,T] at expected event fraction r_m (solves p, draws t*)."""
    p = solve_p(r_m, T)
    return tstar_to_mask(sample_tstar(batch, T, p, generator, device), T)


def untruncated_mask(
    batch: int,
    T: int,
    r: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Ablation mixer: each frame independently from events with probability r (no truncation,
    same expected event fraction r as TSM at r_m = r)."""
    batch, T, r = _check_batch(batch), _check_T(T), _check_unit("r", r)
    return _rand((batch, T), generator, device) < r


def sliding_mask(
    batch: int,
    T: int,
    P: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """He et al.'s replacement: with probability P a sample's WHOLE sequence is events [B,T]."""
    batch, T, P = _check_batch(batch), _check_T(T), _check_unit("P", P)
    whole = _rand((batch, 1), generator, device) < P
    return whole.expand(batch, T).clone()


def sample_mask(
    kind: str,
    batch: int,
    T: int,
    r: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Event mask [B,T] of mixer `kind` ("tsm", "untruncated", "sliding") at expected event
    fraction r (r_m for TSM, the frame probability for untruncated, P for sliding)."""
    if kind == "tsm":
        return tsm_mask(batch, T, r, generator, device)
    if kind == "untruncated":
        return untruncated_mask(batch, T, r, generator, device)
    if kind == "sliding":
        return sliding_mask(batch, T, r, generator, device)
    raise ValueError(f"unknown mixer {kind!r}; valid: {', '.join(MIXERS)}")


def mix_by_mask(static: torch.Tensor, events: torch.Tensor, mask: torch.Tensor) -> Mixed:
    """Take frame t of sample b from `events` where mask[b,t] else from `static` ([B,T,...])."""
    if static.shape != events.shape:
        raise ValueError(
            f"static and events must have the same shape, got {tuple(static.shape)} "
            f"and {tuple(events.shape)}"
        )
    if static.dim() < 2:
        raise ValueError(f"expected [B, T, ...] batches, got shape {tuple(static.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be boolean, got {mask.dtype}")
    if tuple(mask.shape) != tuple(static.shape[:2]):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the batch's [B, T] = "
            f"{tuple(static.shape[:2])}"
        )
    mask = mask.to(static.device)
    view = mask.reshape(*mask.shape, *([1] * (static.dim() - 2)))
    x = torch.where(view, events, static)
    mag = mask.to(static.dtype if static.is_floating_point() else torch.float32)
    return Mixed(x=x, mag_target=mag, mrp_target=mag.mean(dim=1))


def mix(static: torch.Tensor, events: torch.Tensor, tstar: torch.Tensor) -> Mixed:
    """TSM mix of [B,T,...] batches at 0-based t* [B]: static before t*, events from t* on.
    The MRP target is (T - t*)/T, 0 when t* = T (no replacement)."""
    if static.dim() < 2:
        raise ValueError(f"expected [B, T, ...] batches, got shape {tuple(static.shape)}")
    if tstar.shape != static.shape[:1]:
        raise ValueError(
            f"tstar shape {tuple(tstar.shape)} does not match batch size {static.shape[0]}"
        )
    return mix_by_mask(static, events, tstar_to_mask(tstar.to(static.device), static.shape[1]))
