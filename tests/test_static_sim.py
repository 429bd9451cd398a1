"""`data.static_encoding: sim`: every picture a simulated recording binned like the real events."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tmkt.datasets import (
    DataConfig,
    DatasetError,
    EventDataset,
    PairedDataset,
    StaticDataset,
    StaticPoolDataset,
    build_static,
    prepare,
)
from tmkt.datasets import sim as sim_source
from tmkt.datasets.sim import MEMO, picture_seed
from tmkt.datasets.sim_static import epoch_seed, static_sim_settings
from tmkt.events.frames import events_to_frames
from tmkt.events.sim import preset, simulate_batch


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Every test starts without remembered recordings."""
    MEMO.clear()
    yield
    MEMO.clear()


@pytest.fixture(scope="module")
def nmnist_prep(shared_data):
    """The real N-MNIST/MNIST slice, prepared once (configs are swapped in by `_prep`)."""
    return prepare(DataConfig(name="nmnist", root=shared_data, T=8, static_encoding="sim"))


def _prep(prep, cache_dir, **changes):
    """`prep` with its config changed (sources and split stay: they do not depend on these)."""
    cfg = dataclasses.replace(
        prep.cfg, cache_dir=cache_dir, max_per_class=changes.pop("max_per_class", 1), **changes
    )
    return dataclasses.replace(prep, cfg=cfg)


def _small_pool(prep, per_class: int = 4):
    """`prep` with a train static pool of `per_class` pictures per class (fast to simulate)."""
    static = dict(prep.split.static)
    static["train"] = {c: refs[:per_class] for c, refs in static["train"].items()}
    return dataclasses.replace(prep, split=dataclasses.replace(prep.split, static=static))


def _expected(prep, item, seed: int = 0, **kw) -> tuple[np.ndarray, int]:
    """Frames of one picture simulated on its own with the N-MNIST preset, and its event count."""
    picture = prep.sources.load_static(item)
    events = simulate_batch([picture], preset("nmnist"), seeds=[picture_seed(seed, item.ref)])[0]
    c = prep.cfg
    frames = events_to_frames(
        events, (34, 34), c.T, size=prep.frame_hw, binning=c.binning, norm=c.norm, **kw
    )
    return frames, len(events)


def test_frames_are_the_simulated_recording_binned_like_the_events(nmnist_prep, tmp_path):
    prep = _prep(nmnist_prep, tmp_path)
    ds = StaticDataset(prep, "train")
    assert len(ds) == 10 and ds.sim is not None and ds.sim.cache.built
    assert "simstatic-nmnist" in ds.sim.cache.path.name
    for j in (0, 7):
        want, n = _expected(prep, ds.items[j])
        got = ds.encode(j)
        assert got.dtype == np.float32 and got.shape == (8, 2, 34, 34)
        np.testing.assert_array_equal(got, want)
        assert got.sum() == n > 1000  # time binning, no norm: every event counted once
        assert not np.array_equal(got[0], got[3])  # a recording, not a picture over T
    many = ds.encode_many([7, 0, 7])
    assert many.dtype == np.float32
    np.testing.assert_array_equal(many[1], ds.encode(0))
    np.testing.assert_array_equal(many[0], many[2])
    # the real events of the config use a different cache file
    events = EventDataset(prep, "train")
    assert events.cache.path != ds.sim.cache.path
    # another seed, another recording
    other = StaticDataset(_prep(nmnist_prep, tmp_path, static_sim={"seed": 3}), "train")
    np.testing.assert_array_equal(other.encode(0), _expected(prep, ds.items[0], seed=3)[0])
    assert not np.array_equal(other.encode(0), ds.encode(0))
    assert other.sim.cache.path != ds.sim.cache.path


def test_other_size_binning_and_norm_follow_the_config(nmnist_prep, tmp_path):
    prep = _prep(nmnist_prep, tmp_path, size=(17, 17), binning="count", norm="log1p", cache=False)
    ds = StaticDataset(prep, "val")
    assert ds.sim.cache is None
    got = ds.encode_many([2])[0]
    assert got.shape == (8, 2, 17, 17)
    np.testing.assert_allclose(got, _expected(prep, ds.items[2])[0], rtol=0, atol=0)


def test_cache_equals_uncached_and_is_read_without_simulating(nmnist_prep, tmp_path, monkeypatch):
    idx = list(range(10))
    plain = StaticDataset(_prep(nmnist_prep, tmp_path, cache=False), "train").encode_many(idx)
    first = StaticDataset(_prep(nmnist_prep, tmp_path), "train")
    assert first.sim.cache.built
    np.testing.assert_array_equal(first.encode_many(idx), plain)
    MEMO.clear()

    def refuse(*args, **kwargs):
        raise AssertionError("simulated again")

    monkeypatch.setattr(sim_source, "simulate_pictures", refuse)
    again = StaticDataset(_prep(nmnist_prep, tmp_path), "train")
    assert not again.sim.cache.built
    np.testing.assert_array_equal(again.encode_many(idx), plain)
    np.testing.assert_array_equal(again.encode(4), plain[4])


def test_paired_batch_equals_items_with_full_static_frames(nmnist_prep, tmp_path):
    prep = _small_pool(_prep(nmnist_prep, tmp_path, max_per_class=2))
    ds = PairedDataset(prep, "train")
    assert len(ds.static) == 40 and ds.static.sim.cache is not None
    ds.set_epoch(1)
    idx = [3, 0, 11, 3, 19]
    st, ev, labels = ds.__getitems__(idx).columns
    assert st.dtype == torch.float32 and st.shape == (5, 8, 2, 34, 34)
    for k, i in enumerate(idx):
        s1, e1, y1 = ds[i]
        assert torch.equal(st[k], s1) and torch.equal(ev[k].float(), e1.float())
        assert int(labels[k]) == y1
        want, n = _expected(prep, ds.static.items[ds.partner_of(i)])
        np.testing.assert_array_equal(s1.numpy(), want)
    assert not torch.equal(st[:, 0], st[:, 1])  # not a plane repeated over T
    # augmented (train split): the batch still equals the items
    aug = PairedDataset(_small_pool(_prep(nmnist_prep, tmp_path, max_per_class=2, augment=True)),
                        "train")
    assert aug.static.augment is aug.static.sim.augment is not None
    st, ev, _ = aug.__getitems__(idx).columns
    for k, i in enumerate(idx):
        s1, e1, _ = aug[i]
        assert torch.equal(st[k], s1) and torch.equal(ev[k], e1)
    # the static-only phase over the same pool
    pool = StaticPoolDataset(prep, "train")
    x, y = pool.__getitems__([0, 5, 19]).columns
    for k, i in enumerate([0, 5, 19]):
        xi, yi = pool[i]
        assert torch.equal(x[k], xi) and int(y[k]) == yi and xi.dtype == torch.float32


def test_per_epoch_simulates_anew_every_epoch(nmnist_prep, tmp_path):
    prep = _prep(nmnist_prep, tmp_path, static_sim={"per_epoch": True, "seed": 2})
    ds = StaticDataset(prep, "train")
    assert ds.sim.cache is None
    idx = [0, 4, 9]
    e0 = ds.encode_many(idx)
    np.testing.assert_array_equal(e0[1], _expected(prep, ds.items[4], seed=epoch_seed(2, 0))[0])
    ds.set_epoch(1)
    e1 = ds.encode_many(idx)
    np.testing.assert_array_equal(e1[2], _expected(prep, ds.items[9], seed=epoch_seed(2, 1))[0])
    assert all(not np.array_equal(a, b) for a, b in zip(e0, e1, strict=True))
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds.encode_many(idx), e0)
    np.testing.assert_array_equal(ds.encode(4), e0[1])
    assert epoch_seed(2, 0) != epoch_seed(2, 1) != epoch_seed(3, 1)


def test_no_preset_error_and_bad_settings(tmp_path):
    from test_datasets_fakes import write_bin, write_image

    for c in ("cat", "dog"):
        for i in range(3):
            write_bin(tmp_path / "ev" / c / f"s{i}.bin", seed=i)
            write_image(tmp_path / "img" / c / f"s{i}.png", 40 + 60 * i)
    kw = dict(name="folder", root=tmp_path / "ev", static_root=tmp_path / "img", T=4,
              size=(34, 34), cache=False, static_encoding="sim", val_fraction=0.0,
              test_fraction=0.0)
    # refused when the config is made, before any data is read
    with pytest.raises(DatasetError, match=r"^data.static_encoding sim: dataset 'folder' has no "
                       r"simulator preset; set data.static_sim.preset \(one of nmnist, "):
        DataConfig(**kw)
    ds = build_static(DataConfig(**kw, static_sim={"preset": "nmnist"}), "train")
    assert ds.encode(0).shape == (4, 2, 34, 34)
    nm = DataConfig(name="nmnist", static_encoding="sim")
    assert static_sim_settings(nm).preset == "nmnist"
    ncal = static_sim_settings(dataclasses.replace(nm, name="ncaltech101"))
    assert ncal.params.sensor_size == (240, 180)
    dig = dataclasses.replace(nm, name="digits_sim",
                              options={"sim_preset": "cifar10dvs", "sim": {"n_saccades": 2}})
    assert static_sim_settings(dig).params == preset("cifar10dvs", n_saccades=2)
    bad = [
        ({"seed": -1}, "data.static_sim.seed"),
        ({"seed": 1.5}, "data.static_sim.seed"),
        ({"per_epoch": "yes"}, "data.static_sim.per_epoch"),
        ({"preset": "dvs"}, "data.static_sim.preset"),
        ({"params": [1]}, "data.static_sim.params"),
        ({"params": {"bogus": 1}}, r"data.static_sim.params: unknown simulator setting.*bogus"),
        ({"params": {"eps": 0}}, r"data.static_sim.params: .*eps"),
    ]
    for value, match in bad:
        with pytest.raises(DatasetError, match=match) as err:
            dataclasses.replace(nm, static_sim=value)  # DataConfig checks them when made
        assert "\n" not in str(err.value)
