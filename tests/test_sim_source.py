"""The `sim` source serves exactly the requested pictures, once each, bit for bit as before."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tmkt.datasets import DataConfig, DatasetError, EventDataset, prepare
from tmkt.datasets import sim as sim_source
from tmkt.datasets.registry import get_sources
from tmkt.datasets.sim import MEMO, picture_seed
from tmkt.events.sim import SimParams, simulate_batch

# (events, sha256 of the event bytes) of MNIST pictures simulated with seed 0 (N-MNIST preset)
# before the per-picture source: the old source gave exactly these.
KNOWN = {
    "train/00000": (4728, "2017a3acb786c264"),
    "train/00005": (5180, "226a7df55df7a195"),
    "train/01234": (6345, "793e12ae3903ac67"),
    "train/59699": (4185, "a60eb3bc4a801143"),
    "test/09949": (5595, "5e3f5297445c3b21"),
}


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Every test starts without remembered recordings."""
    MEMO.clear()
    yield
    MEMO.clear()


def old_chunk_events(src, i: int, chunk: int) -> np.ndarray:
    """What the chunk-LRU source did: simulate picture i's whole chunk (by picture index)."""
    loader = src.load_events
    c = i // chunk
    todo = loader.pictures[c * chunk : (c + 1) * chunk]
    images = [loader.load_static(it) for it in todo]
    seeds = [picture_seed(loader.seed, it.ref) for it in todo]
    return simulate_batch(images, loader.params, seeds=seeds)[i - c * chunk]


def _digest(ev: np.ndarray) -> str:
    return hashlib.sha256(ev.tobytes()).hexdigest()[:16]


def test_load_many_equals_simulate_batch_and_the_old_chunks(shared_data, tmp_path):
    cfg = DataConfig(
        name="sim", root=shared_data, cache_dir=tmp_path, options={"base": "nmnist"}
    )
    src = get_sources(cfg)
    by_ref = {e.ref.split("/", 1)[1]: e for e in src.events}
    items = [by_ref[r] for r in KNOWN]
    got = src.load_events.load_many(items + items[:2])  # repeats are served once simulated
    assert [sensor for _, sensor in got] == [(34, 34)] * 7
    got = [ev for ev, _ in got]
    assert all(a is b for a, b in zip(got[:2], got[5:], strict=True))
    got = got[:5]
    for ref, ev in zip(KNOWN, got, strict=True):
        assert (len(ev), _digest(ev)) == KNOWN[ref], ref
    pics = [src.static[src.load_events.position[r]] for r in KNOWN]
    expected = simulate_batch(
        [src.load_static(p) for p in pics], SimParams(), seeds=[picture_seed(0, r) for r in KNOWN]
    )
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    # the old source (a chunk of 8 pictures by index) for two of them
    for ref, ev in list(zip(KNOWN, got, strict=True))[:2]:
        assert np.array_equal(ev, old_chunk_events(src, src.load_events.position[ref], 8))
    # one at a time gives the same arrays again (remembered, not simulated anew)
    assert src.load_events(items[2])[0] is got[2]


def _digits(tmp_path, **options) -> DataConfig:
    opts = {"sim_chunk": 16, "sim_workers": 1, **options}
    return DataConfig(
        name="digits_sim", root=tmp_path, cache_dir=tmp_path, T=4, max_per_class=3, options=opts
    )


def _count_simulations(monkeypatch) -> list[list[str]]:
    """Record the picture refs of every `simulate_pictures` call made in this process."""
    calls: list[list[str]] = []
    real = sim_source.simulate_pictures

    def spy(images, params, seeds, chunk):
        calls.append([s[1] for s in seeds])
        return real(images, params, seeds, chunk)

    monkeypatch.setattr(sim_source, "simulate_pictures", spy)
    return calls


def test_cache_build_simulates_each_requested_picture_once(tmp_path, monkeypatch):
    calls = _count_simulations(monkeypatch)
    prep = prepare(_digits(tmp_path))
    ds = EventDataset(prep, "train")
    assert ds.cache is not None and ds.cache.built and len(ds) == 30
    # exactly the 30 pictures of the subset, in batches of sim_chunk = 16, each once
    assert [len(c) for c in calls] == [16, 14]
    crcs = [c for call in calls for c in call]
    wanted = [picture_seed(0, it.ref.split("/", 1)[1])[1] for it in ds.items]
    assert crcs == wanted
    # the cached frames are those of the recordings simulate_batch gives
    loader = prep.sources.load_events
    assert np.array_equal(ds.cache.rows(range(30)), ds.decode_many(range(30)))
    first = prep.sources.static[loader.position_of(ds.items[0])]
    ref_ev = simulate_batch([prep.sources.load_static(first)], seeds=[picture_seed(0, first.ref)])
    assert np.array_equal(loader(ds.items[0])[0], ref_ev[0])
    # the built cache is used as it is: nothing simulated
    calls.clear()
    MEMO.clear()
    again = EventDataset(prepare(_digits(tmp_path)), "train")
    assert not again.cache.built and calls == []
    assert np.array_equal(again.cache.rows(range(30)), ds.cache.rows(range(30)))


def test_batches_without_cache_simulate_only_what_is_missing(tmp_path, monkeypatch):
    calls = _count_simulations(monkeypatch)
    cfg = _digits(tmp_path)
    cfg.cache = False
    ds = EventDataset(prepare(cfg), "val")
    a = ds.decode_many([3, 1, 3])
    assert sorted(len(c) for c in calls) == [2]  # pictures 1 and 3, in one batch
    b = ds.decode_many([1, 2])
    assert [len(c) for c in calls] == [2, 1]  # only picture 2 was new
    assert np.array_equal(a[1], b[0]) and np.array_equal(a[0], a[2])
    assert np.array_equal(ds.decode(2), b[1])
    assert len(calls) == 2


def test_plan_hands_out_each_recording_once_and_serves_extras(tmp_path):
    src = get_sources(_digits(tmp_path, sim_chunk=4))
    loader = src.load_events
    items = src.events[:10]
    expected = [loader.load_many([it])[0][0] for it in items]
    MEMO.clear()
    with loader.plan(items[:6]):
        # in order, out of order, again, and one outside the plan
        got = loader.load_many(items[:2]) + loader.load_many([items[5], items[3]])
        got += loader.load_many([items[0], items[8]])
        assert loader._plan is not None and loader._plan.ready.keys() == {2, 4}
    assert loader._plan is None
    order = [0, 1, 5, 3, 0, 8]
    assert all(np.array_equal(ev, expected[k]) for (ev, _), k in zip(got, order, strict=True))


def test_worker_processes_give_the_same_frames(tmp_path, monkeypatch):
    one = EventDataset(prepare(_digits(tmp_path / "one", sim_chunk=8)), "train")
    MEMO.clear()
    monkeypatch.setattr(sim_source, "MIN_PARALLEL", 1)
    pools = []

    def pool(workers):
        pools.append(sim_source._start_pool(workers))
        return pools[-1]

    monkeypatch.setattr(sim_source, "_pool", pool)
    two = EventDataset(prepare(_digits(tmp_path / "two", sim_chunk=8, sim_workers=2)), "train")
    assert two.cache.built and two.items == one.items
    assert len(pools) == 1 and pools[0]._max_workers == 2  # the frames came from 2 processes
    assert np.array_equal(two.cache.rows(range(30)), one.cache.rows(range(30)))
    assert float(one.cache.rows(range(30)).sum()) > 30 * 500  # real recordings, not empty


def test_progress_bar_on_long_builds(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # tqdm draws on terminals only
    monkeypatch.setattr(sim_source, "PROGRESS_MIN", 30)
    EventDataset(prepare(_digits(tmp_path)), "train")
    err = capsys.readouterr().err
    assert "digits_sim: simulating recordings:   0%|          | 0/30" in err
    monkeypatch.setattr(sim_source, "PROGRESS_MIN", 31)
    MEMO.clear()
    EventDataset(prepare(_digits(tmp_path / "again")), "train")  # 30 pictures: no bar
    assert "simulating" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value"),
    [("sim_chunk", 0), ("sim_workers", "two"), ("sim_seed", -1), ("sim_workers", True)],
)
def test_bad_options_name_the_setting(tmp_path, option, value):
    with pytest.raises(DatasetError, match=f"option {option} must be an integer"):
        get_sources(_digits(tmp_path, **{option: value}))
