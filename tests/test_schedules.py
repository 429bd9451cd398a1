"""Event-fraction schedules: values at known points, clipping, and clear errors."""

from __future__ import annotations

import pytest

from tmkt.transfer.schedules import build_schedule, progress_of


def test_default_is_cubic_power() -> None:
    s = build_schedule()
    assert s(0.0) == 0.0
    assert s(0.5) == pytest.approx(0.125)
    assert s(0.2) == pytest.approx(0.008)
    assert s(1.0) == 1.0
    assert s(1.7) == 1.0  # P = min(1, progress^3)
    assert s.at(30, 60) == pytest.approx(0.125)
    assert s.at(90, 60) == 1.0


def test_power_k_linear_constant() -> None:
    assert build_schedule("power", k=2)(0.5) == pytest.approx(0.25)
    assert build_schedule("power", k=0.5)(0.25) == pytest.approx(0.5)
    assert build_schedule("linear")(0.3) == pytest.approx(0.3)
    lin = build_schedule("linear", start=0.2, end=0.6)
    assert lin(0.5) == pytest.approx(0.4)
    assert lin(-1.0) == pytest.approx(0.2)
    const = build_schedule("constant", value=0.35)
    assert [const(p) for p in (0.0, 0.4, 1.0)] == [0.35, 0.35, 0.35]


def test_progress_of() -> None:
    assert progress_of(0, 10) == 0.0
    assert progress_of(5, 10) == 0.5
    assert progress_of(15, 10) == 1.0
    with pytest.raises(ValueError, match="total"):
        progress_of(1, 0)
    with pytest.raises(ValueError, match="iteration"):
        progress_of(-1, 10)


def test_errors_name_valid_choices() -> None:
    with pytest.raises(ValueError, match="power, linear, constant"):
        build_schedule("cosine")
    with pytest.raises(ValueError, match="k, start, end"):
        build_schedule("power", p=3)
    with pytest.raises(ValueError, match="value"):
        build_schedule("constant", value=1.5)
    with pytest.raises(ValueError, match="k must be"):
        build_schedule("power", k=0)
    with pytest.raises(ValueError, match="NaN"):
        build_schedule()(float("nan"))
