"""Splits: deterministic, stratified, order-independent; counterparts follow; JSON round trip."""

from __future__ import annotations

import json

import pytest

from tmkt.datasets import DataConfig, DatasetError, Item, load_split, save_split
from tmkt.datasets.splits import make_split, resolve, stratify


def _items(n_per: dict[str, int], official: str | None = None, key: bool = False) -> list[Item]:
    return [
        Item(f"{c}/{i:03d}", c, (c, i) if key else None, official)
        for c, n in n_per.items()
        for i in range(n)
    ]


def test_config_from_dict_rejects_unknown_keys_and_lists_valid():
    with pytest.raises(ValueError, match=r"unknown DataConfig key\(s\) \['bogus'\].*val_fraction"):
        DataConfig.from_dict({"name": "nmnist", "bogus": 1})
    cfg = DataConfig.from_dict({"name": "cifar10dvs", "size": 48, "T": 4})
    assert cfg.size == (48, 48) and cfg.T == 4 and cfg.pairing == "class"
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert DataConfig(size=[17, 20]).size == (17, 20) and DataConfig(size=9).size == (9, 9)
    with pytest.raises(ValueError, match="size must be"):
        DataConfig(size=(1, 2, 3))


@pytest.mark.parametrize(
    "field, value",
    [("binning", "space"), ("norm", "l2"), ("pairing", "random"), ("val_fraction", 1.0),
     ("T", 0), ("static_encoding", "rgb"), ("max_per_class", 0)],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        DataConfig(**{field: value})


def test_config_defaults():
    cfg = DataConfig()
    assert (cfg.T, cfg.binning, cfg.norm, cfg.static_encoding, cfg.pairing) == (
        10, "time", "none", "hsv_v", "class")
    assert (cfg.val_fraction, cfg.test_fraction, cfg.exclude_background) == (0.1, 0.1, True)



def test_cache_dir_default_falls_back_when_the_root_is_read_only(tmp_path, monkeypatch):
    cfg = DataConfig(root=tmp_path)
    assert cfg.cache_path == tmp_path / ".tmkt_cache"  # writable root: the cache sits beside it
    assert DataConfig(root=tmp_path, cache_dir=tmp_path / "c").cache_path == tmp_path / "c"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("tmkt.datasets.config.os.access", lambda path, mode: False)
    assert cfg.cache_path == tmp_path / "xdg" / "tmkt"


def test_stratify_counts_per_class_and_no_overlap():
    items = _items({"a": 20, "b": 10, "c": 3})
    out = stratify(items, val_fraction=0.1, test_fraction=0.1, seed=1)
    count = {s: {c: sum(i.label == c for i in out[s]) for c in "abc"} for s in out}
    assert count["test"] == {"a": 2, "b": 1, "c": 1}
    assert count["val"] == {"a": 2, "b": 1, "c": 1}  # 10% of the rest, at least 1
    assert count["train"] == {"a": 16, "b": 8, "c": 1}
    refs = [i.ref for s in out.values() for i in s]
    assert sorted(refs) == sorted(i.ref for i in items)  # a partition


def test_stratify_is_deterministic_order_independent_and_seeded():
    items = _items({"a": 30, "b": 30})
    a = stratify(items, val_fraction=0.2, test_fraction=None, seed=5)
    b = stratify(list(reversed(items)), val_fraction=0.2, test_fraction=None, seed=5)
    c = stratify(items, val_fraction=0.2, test_fraction=None, seed=6)
    assert [i.ref for i in a["val"]] == [i.ref for i in b["val"]]
    assert [i.ref for i in a["val"]] != [i.ref for i in c["val"]]
    # a class's split does not depend on which other classes exist
    only_a = stratify(_items({"a": 30}), val_fraction=0.2, test_fraction=None, seed=5)
    assert [i.ref for i in only_a["val"]] == [i.ref for i in a["val"] if i.label == "a"]
    assert a["test"] == []


def test_official_test_kept_and_no_test_draw():
    items = _items({"a": 10}, official="train") + [Item("t/0", "a", None, "test")]
    out = stratify(items, val_fraction=0.1, test_fraction=None, seed=0)
    assert [i.ref for i in out["test"]] == ["t/0"]
    assert len(out["val"]) == 1 and len(out["train"]) == 9


def test_static_counterparts_follow_their_recording():
    events = _items({"a": 20, "b": 20}, key=True)
    static = _items({"a": 20, "b": 20}, key=True) + [Item("x/0", "a", None, None)]
    static = [Item("s" + s.ref, s.label, s.key, s.official) for s in static]
    sp = make_split(events, static, ["a", "b"], val_fraction=0.2, test_fraction=0.1, seed=3)
    for name in ("train", "val", "test"):
        ev_keys = {r for r in sp.event_refs(name)}
        st = {r[1:] for r in sp.static_refs(name) if r != "sx/0"}
        assert st == ev_keys  # same key set: the picture is in its recording's split
    assert len(sp.event_refs("test")) == 4 and len(sp.event_refs("val")) == 8


def test_save_load_round_trip_and_bad_files(tmp_path):
    events = _items({"a": 10, "b": 10})
    sp = make_split(events, [], ["a", "b"], val_fraction=0.1, test_fraction=0.1, seed=0,
                    meta={"dataset": "x"})
    path = save_split(sp, tmp_path / "run" / "split.json")
    back = load_split(path)
    assert back.to_dict() == sp.to_dict()
    assert json.loads(path.read_text())["meta"] == {"dataset": "x"}
    (tmp_path / "bad.json").write_text('{"version": 1, "classes": []}')
    with pytest.raises(DatasetError, match="bad.json: not a valid split file"):
        load_split(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="split file not found"):
        load_split(tmp_path / "none.json")
    with pytest.raises(DatasetError, match="2 event samples that are not in the data"):
        resolve({"a": ["a/000", "gone/1", "gone/2"]}, {i.ref: i for i in events}, "event samples")
