"""Time-step mixup: the r_m -> p solver, the law of t*, the mixing itself, baseline mixers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from tmkt.transfer.tsm import (
    expected_event_fraction,
    mix,
    mix_by_mask,
    sample_mask,
    sample_tstar,
    sliding_mask,
    solve_p,
    tsm_mask,
    tstar_to_mask,
    untruncated_mask,
)

N_DRAWS = 100_000


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("T", "r_m", "p"), [(10, 0.1, 0.0193), (10, 0.5, 0.1312), (10, 0.9, 0.4998), (4, 0.5, 0.2587)]
)
def test_solve_p_check_values(T: int, r_m: float, p: float) -> None:
    assert round(solve_p(r_m, T), 4) == p
    assert expected_event_fraction(solve_p(r_m, T), T) == pytest.approx(r_m, abs=1e-10)


def test_solve_p_endpoints_and_T1() -> None:
    assert solve_p(0.0, 10) == 0.0
    assert solve_p(1.0, 10) == 1.0
    assert solve_p(0.3, 1) == pytest.approx(0.3)  # one frame: the fraction is p itself
    ps = [solve_p(r, 10) for r in np.linspace(0.01, 0.99, 25)]
    assert all(b > a for a, b in zip(ps, ps[1:], strict=False))


def test_expected_fraction_matches_direct_sum() -> None:
    # E[#static frames] = sum_{t=1..T} (1-p)^t, computed term by term.
    for T in (1, 4, 10):
        for p in (0.01, 0.2, 0.7):
            direct = 1 - sum((1 - p) ** t for t in range(1, T + 1)) / T
            assert expected_event_fraction(p, T) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan])
def test_solve_p_rejects_bad_ratio(bad: float) -> None:
    with pytest.raises(ValueError, match="r_m"):
        solve_p(bad, 10)


@pytest.mark.parametrize("bad_T", [0, -3, 2.5])
def test_rejects_bad_T(bad_T) -> None:
    with pytest.raises(ValueError, match="T"):
        solve_p(0.5, bad_T)
    with pytest.raises(ValueError, match="T"):
        sample_tstar(4, bad_T, 0.5)


@pytest.mark.parametrize("T", [10, 4])
@pytest.mark.parametrize("r_m", [0.1, 0.5, 0.9])
def test_mean_event_fraction_equals_r_m(T: int, r_m: float) -> None:
    mask = tsm_mask(N_DRAWS, T, r_m, generator=_gen(1000 * T + int(r_m * 10)))
    assert abs(mask.float().mean().item() - r_m) < 0.005


def _tstar_law(p: float, T: int) -> np.ndarray:
    """P(t* = t) for 0-based t = 0..T-1, then P(none) at index T."""
    probs = [p * (1 - p) ** t for t in range(T)] + [(1 - p) ** T]
    return np.array(probs)


@pytest.mark.parametrize(("T", "r_m"), [(10, 0.5), (4, 0.3)])
def test_tstar_follows_truncated_geometric(T: int, r_m: float) -> None:
    p = solve_p(r_m, T)
    tstar = sample_tstar(N_DRAWS, T, p, generator=_gen(7))
    assert tstar.dtype == torch.long and tstar.shape == (N_DRAWS,)
    counts = np.bincount(tstar.numpy(), minlength=T + 1)
    assert len(counts) == T + 1  # nothing outside 0..T
    law = _tstar_law(p, T)
    assert law.sum() == pytest.approx(1.0)
    assert chisquare(counts, law * N_DRAWS).pvalue > 0.001


def test_chisquare_rejects_a_wrong_law() -> None:
    T = 10
    p = solve_p(0.5, T)
    counts = np.bincount(sample_tstar(N_DRAWS, T, p, generator=_gen(7)).numpy(), minlength=T + 1)
    # A slightly different p, and the untruncated mixer's first-event-frame law, are rejected.
    assert chisquare(counts, _tstar_law(p * 1.1, T) * N_DRAWS).pvalue < 1e-6
    first = np.full(T + 1, 0.0)
    for t in range(T):
        first[t] = 0.5 * 0.5**t
    first[T] = 0.5**T
    assert chisquare(counts, first * N_DRAWS).pvalue < 1e-6


def test_tstar_extremes_and_reproducibility() -> None:
    assert torch.equal(sample_tstar(50, 10, 0.0), torch.full((50,), 10))
    assert torch.equal(sample_tstar(50, 10, 1.0), torch.zeros(50, dtype=torch.long))
    a = sample_tstar(64, 10, 0.2, generator=_gen(3))
    b = sample_tstar(64, 10, 0.2, generator=_gen(3))
    assert torch.equal(a, b)


def test_mix_explicit_example() -> None:
    B, T = 4, 5
    static = torch.zeros(B, T, 2, 3, 3)
    events = torch.arange(B * T, dtype=torch.float32).reshape(B, T, 1, 1, 1).expand(B, T, 2, 3, 3)
    tstar = torch.tensor([0, 2, 4, T])
    out = mix(static, events, tstar)
    expected_mask = torch.tensor(
        [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.float32
    )
    assert torch.equal(out.mag_target, expected_mask)
    assert torch.allclose(out.mrp_target, torch.tensor([1.0, 0.6, 0.2, 0.0]))
    assert torch.allclose(out.mrp_target, (T - tstar).float() / T)
    ev = expected_mask.bool()
    assert torch.equal(out.x[ev], events[ev])
    assert torch.equal(out.x[~ev], static[~ev])
    assert out.x.shape == static.shape


def test_mixed_sequence_never_switches_back() -> None:
    T = 10
    B = 2000
    static = torch.zeros(B, T, 1)
    events = torch.ones(B, T, 1)
    out = mix(static, events, sample_tstar(B, T, solve_p(0.5, T), generator=_gen(11)))
    src = out.x[..., 0]
    assert torch.equal(src, out.mag_target)
    assert bool((src[:, 1:] >= src[:, :-1]).all())  # once events, always events
    assert 0 < src.mean().item() < 1


def test_untruncated_same_fraction_but_switches() -> None:
    T = 10
    for r in (0.2, 0.7):
        mask = untruncated_mask(N_DRAWS, T, r, generator=_gen(5))
        assert abs(mask.float().mean().item() - r) < 0.005
        # Per-frame independence: the frames switch back and forth, unlike TSM.
        assert bool((mask[:, 1:] < mask[:, :-1]).any())
        tsm = tsm_mask(N_DRAWS, T, r, generator=_gen(6))
        assert abs(tsm.float().mean().item() - mask.float().mean().item()) < 0.01


def test_sliding_replaces_whole_sequences() -> None:
    T, P = 10, 0.3
    mask = sliding_mask(N_DRAWS, T, P, generator=_gen(9))
    rows = mask.float().mean(dim=1)
    assert bool(((rows == 0) | (rows == 1)).all())
    assert abs(rows.mean().item() - P) < 0.005


def test_sample_mask_dispatch_and_error() -> None:
    for kind in ("tsm", "untruncated", "sliding"):
        m = sample_mask(kind, 8, 6, 0.5, generator=_gen(0))
        assert m.shape == (8, 6) and m.dtype == torch.bool
    with pytest.raises(ValueError, match="tsm, untruncated, sliding"):
        sample_mask("cutmix", 8, 6, 0.5)


def test_mix_by_mask_targets_from_mask() -> None:
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out = mix_by_mask(torch.zeros(2, 3, 4), torch.ones(2, 3, 4), mask)
    assert torch.equal(out.mag_target, mask.float())
    assert torch.allclose(out.mrp_target, torch.tensor([2 / 3, 0.0]))
    assert torch.equal(out.x[..., 0], mask.float())


def test_bad_shapes_rejected() -> None:
    with pytest.raises(ValueError, match="same shape"):
        mix_by_mask(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask shape"):
        mix_by_mask(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="tstar shape"):
        mix(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="0..3"):
        tstar_to_mask(torch.tensor([0, 4]), 3)
    with pytest.raises(ValueError, match="P"):
        sliding_mask(2, 3, 1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_follows_inputs() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    tstar = sample_tstar(16, 10, 0.2, generator=gen)
    assert tstar.is_cuda
    out = mix(torch.zeros(16, 10, 2, device="cuda"), torch.ones(16, 10, 2, device="cuda"), tstar)
    assert out.x.is_cuda and out.mag_target.is_cuda
