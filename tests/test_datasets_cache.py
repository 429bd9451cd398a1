"""Frame cache: equals decoding; reused; rebuilt on damage, truncation, settings or file change."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tmkt.datasets import DataConfig, EventDataset, prepare
from tmkt.datasets.cache import FrameCache


@pytest.fixture(scope="module")
def prep(shared_data):
    return prepare(DataConfig(root=shared_data, max_per_class=2, T=5, cache=False))


def _cached(prep, tmp_path, split="val", **kw):
    prep.cfg = DataConfig(root=prep.cfg.root, max_per_class=kw.pop("max_per_class", 2),
                          T=kw.pop("T", 5), cache=True, cache_dir=tmp_path, **kw)
    return EventDataset(prep, split)


def test_cache_equals_decoding_and_is_one_file(prep, tmp_path):
    ds = _cached(prep, tmp_path)
    assert ds.cache.built and ds.cache.reason == "no cache file"
    npys = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert len(npys) == 1 and npys[0].startswith("nmnist-val-T5-34x34-time-none-")
    arr = np.load(tmp_path / npys[0], mmap_mode="r")
    # event counts are integers in [0, 255] here: stored as uint8 and handed on as uint8
    # (frames_dtype "auto"), the exact values decoding gives as float32
    assert arr.shape == (len(ds), 5, 2, 34, 34) and arr.dtype == np.uint8
    assert ds.narrow
    for i in range(len(ds)):
        assert ds[i][0].dtype == torch.uint8
        np.testing.assert_array_equal(ds[i][0].numpy().astype(np.float32), ds.decode(i))
    batch = ds.__getitems__([2, 0, 2]).collate()[0]
    assert batch.dtype == torch.uint8
    np.testing.assert_array_equal(batch.numpy(), np.stack([ds.decode(i) for i in (2, 0, 2)]))
    again = _cached(prep, tmp_path)
    assert not again.cache.built and again.cache.reason == ""
    wide = _cached(prep, tmp_path, frames_dtype="float32")  # same file, widened on read
    assert not wide.cache.built and not wide.narrow
    for i in range(len(ds)):
        assert wide[i][0].dtype == torch.float32
        np.testing.assert_array_equal(wide[i][0].numpy(), ds.decode(i))
    batch = wide.__getitems__([2, 0]).collate()[0]
    assert batch.dtype == torch.float32
    np.testing.assert_array_equal(batch.numpy(), np.stack([ds.decode(i) for i in (2, 0)]))


def test_frames_dtype_is_validated():
    with pytest.raises(ValueError, match="frames_dtype"):
        DataConfig(frames_dtype="uint16")


def test_truncated_cache_is_rebuilt(prep, tmp_path):
    ds = _cached(prep, tmp_path)
    path = ds.cache.path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    again = _cached(prep, tmp_path)
    assert again.cache.built and "truncated" in again.cache.reason
    np.testing.assert_array_equal(again[3][0].numpy(), again.decode(3))
    assert path.stat().st_size == len(data)


def test_flipped_byte_is_rebuilt_never_trusted(prep, tmp_path):
    ds = _cached(prep, tmp_path)
    path = ds.cache.path
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size - 100)
        f.write(b"\x7f\x7f\x7f\x7f")
    again = _cached(prep, tmp_path)
    assert again.cache.built and "hash mismatch" in again.cache.reason
    np.testing.assert_array_equal(again[len(again) - 1][0].numpy(), again.decode(len(again) - 1))


def test_bad_header_and_missing_sidecar_rebuild(prep, tmp_path):
    ds = _cached(prep, tmp_path)
    path = ds.cache.path
    side = path.with_name(path.name + ".json")
    side.unlink()
    assert _cached(prep, tmp_path).cache.reason == "no cache file"
    meta = json.loads(side.read_text())
    raw = bytearray(path.read_bytes())
    raw[:6] = b"BROKEN"
    path.write_bytes(bytes(raw))
    assert json.loads(side.read_text()) == meta
    again = _cached(prep, tmp_path)
    assert again.cache.built and "header" in again.cache.reason


def test_settings_and_file_list_changes_rebuild(prep, tmp_path):
    # the train split: max_per_class (the event budget) subsamples training recordings only
    ds = _cached(prep, tmp_path, "train")
    other_t = _cached(prep, tmp_path, "train", T=3)
    assert other_t.cache.path != ds.cache.path and other_t.cache.built
    more = _cached(prep, tmp_path, "train", max_per_class=3)  # same settings, other files
    assert more.cache.path != ds.cache.path  # one file per sample list: never shared
    assert more.cache.built and more.cache.reason == "no cache file"
    again = _cached(prep, tmp_path, "train")  # the first list's cache is still there, untouched
    assert again.cache.path == ds.cache.path and not again.cache.built
    # a sidecar whose list differs from the one named in the file (a renamed file): rebuilt
    more.cache.path.replace(ds.cache.path)
    (more.cache.path.parent / (more.cache.path.name + ".json")).replace(
        ds.cache.path.parent / (ds.cache.path.name + ".json"))
    renamed = _cached(prep, tmp_path, "train")
    assert renamed.cache.built and renamed.cache.reason == "file list changed"
    log = _cached(prep, tmp_path, "train", norm="log1p")
    assert log.cache.path != ds.cache.path
    np.testing.assert_allclose(log[0][0].numpy(), np.log1p(ds.decode(0)), rtol=1e-6)


def test_split_seeds_get_their_own_caches(shared_data, tmp_path):
    """Two split seeds (same sizes, other recordings) each keep a valid cache of their own, so
    concurrent runs of a sweep cannot swap each other's frames."""
    dss = []
    for seed in (1, 2):
        cfg = DataConfig(root=shared_data, T=3, val_fraction=0.2, seed=seed, cache=True,
                         cache_dir=tmp_path, max_per_class=10)
        dss.append(EventDataset(prepare(cfg), "val"))
    a, b = dss
    assert len(a) == len(b) and a.cache.path != b.cache.path
    assert [it.ref for it in a.items] != [it.ref for it in b.items]
    for ds in dss:
        for i in (0, len(ds) - 1):
            np.testing.assert_array_equal(ds.cache[i], ds.decode(i))


def test_frame_cache_low_level_and_pickle(tmp_path):
    import pickle

    rows = np.arange(4 * 6, dtype=np.float32).reshape(4, 1, 2, 3)
    fc = FrameCache(tmp_path / "c.npy", {"a": 1}, [["x", 1, 2]] * 4, rows.shape, lambda i: rows[i])
    assert fc.built and len(fc) == 4
    np.testing.assert_array_equal(fc[2], rows[2])
    clone = pickle.loads(pickle.dumps(fc))  # DataLoader workers (spawn) get a fresh map
    assert clone._arr is None and float(clone[3].sum()) == float(rows[3].sum())
    fc2 = FrameCache(tmp_path / "c.npy", {"a": 2}, [["x", 1, 2]] * 4, rows.shape, lambda i: rows[i])
    assert fc2.reason == "settings changed"
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_frames_code_change_rebuilds(prep, tmp_path, monkeypatch):
    ds = _cached(prep, tmp_path)
    monkeypatch.setattr("tmkt.datasets.event_frames.frames_code_hash", lambda: "changed")
    again = _cached(prep, tmp_path)
    assert again.cache.path == ds.cache.path
    assert again.cache.built and again.cache.reason == "settings changed"


@pytest.mark.parametrize("numba_on", [True, False])
def test_uint8_rows_gather_equals_decoding(prep, tmp_path, numba_on):
    """Batched reads of a uint8 cache (compiled gather, or numpy's take without numba) give the
    float32 frames decoding gives, in any order, with repeats and negative indices."""
    from tmkt.events import frames

    ds = _cached(prep, tmp_path)
    assert ds.cache.array.dtype == np.uint8
    was = frames.use_numba(numba_on)
    try:
        idx = [3, 0, 3, len(ds) - 1, -1]
        got = ds.cache.rows(idx)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        want = np.stack([ds.decode(i % len(ds)) for i in idx])
        np.testing.assert_array_equal(got, want)
        raw = ds.cache.rows(idx, widen=False)  # the stored counts, not widened
        assert raw.dtype == np.uint8
        np.testing.assert_array_equal(raw.astype(np.float32), want)
        assert ds.cache.rows([]).shape == (0, 5, 2, 34, 34)
        with pytest.raises(IndexError, match="out of range"):
            ds.cache.rows([len(ds)])
    finally:
        frames.use_numba(was)


def test_storage_dtype_follows_the_values(tmp_path):
    """uint8 only when exact: fractions (log1p frames) or counts above 255 stay float32; a
    sidecar from before the dtype field (float32 file) is still accepted; a dtype mismatch
    between sidecar and file rebuilds."""
    shape = (3, 2, 2)

    def make(values):
        path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.npy"
        c = FrameCache(path, {"k": 1}, ["a"], shape, lambda i: values[i])
        return c, path

    ints = np.arange(12, dtype=np.float32).reshape(shape)
    c, path = make(ints)
    assert c.array.dtype == np.uint8
    np.testing.assert_array_equal(c.rows([2, 0]), ints[[2, 0]])
    for values in (ints + 0.5, ints * 30, -ints):  # fractions, > 255, negative
        c, path = make(values)
        assert c.array.dtype == np.float32
        np.testing.assert_array_equal(c.rows([1]), values[[1]])
    side = path.with_name(path.name + ".json")
    meta = json.loads(side.read_text())
    del meta["dtype"]
    side.write_text(json.dumps(meta))
    assert FrameCache(path, {"k": 1}, ["a"], shape, lambda i: -ints[i]).reason == ""
    meta["dtype"] = "uint8"
    side.write_text(json.dumps(meta))
    again = FrameCache(path, {"k": 1}, ["a"], shape, lambda i: -ints[i])
    assert again.built and "expected" in again.reason
