"""A family registered from outside (as datasets/sim.py does): the factory contract end to end."""

from __future__ import annotations

import numpy as np
import pytest

from tmkt.datasets import DATASETS, DataConfig, Item, Sources, build_events, build_paired
from tmkt.events.io import make_events

NAME = "_test_generated"


def _events(item: Item) -> tuple[np.ndarray, tuple[int, int]]:
    k = int(item.ref.split("/")[1])
    n = 10 + k  # recording k holds 10 + k events
    t = np.arange(n) * 100
    return make_events(t, np.full(n, k % 8), np.zeros(n, int), np.ones(n, int)), (8, 6)


def _picture(item: Item) -> np.ndarray:
    return np.full((6, 8), int(item.ref.split("/")[1]), np.uint8)


def _factory(cfg: DataConfig) -> Sources:
    ev = [Item(f"ev/{k}", "ab"[k % 2], ("pic", k)) for k in range(20)]
    st = [Item(f"pic/{k}", "ab"[k % 2], ("pic", k)) for k in range(20)]
    return Sources(NAME, ev, st, _events, _picture, (8, 6))


if NAME not in DATASETS:
    DATASETS.register(NAME)(_factory)


def test_registered_family_pairs_caches_and_splits(tmp_path):
    cfg = DataConfig(name=NAME, root=tmp_path, T=2, pairing="index", cache_dir=tmp_path / "c",
                     static_encoding="gray")
    ds = build_paired(cfg, "train")
    assert ds.classes == ["a", "b"] and ds.in_shape == (2, 6, 8)
    for i in range(len(ds)):
        st, ev, y = ds[i]
        k = int(ds.events.items[i].ref.split("/")[1])
        assert float(ev.sum()) == 10 + k and y == k % 2
        assert float(st.max()) == pytest.approx(k / 255, abs=1e-3)
    assert ds.events.cache is not None and ds.events.cache.built
    assert not build_events(cfg, "train").cache.built  # reused (refs without files)
    n = {s: len(ds.data_split.event_refs(s)) for s in ("train", "val", "test")}
    assert n == {"train": 16, "val": 2, "test": 2}  # no official test: 10% test, 10% val


def test_registering_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        DATASETS.register("nmnist")(_factory)
