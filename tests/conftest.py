"""Shared test fixtures: the real data in ../shared/data, and single-threaded torch."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real data slice (N-MNIST, MNIST, fixtures); skips nothing: CI has it."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"expected the shared data at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir(shared_data: Path) -> Path:
    """One real file per event format."""
    return shared_data / "fixtures"
