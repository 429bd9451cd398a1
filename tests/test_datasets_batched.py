"""Batched loading: `__getitems__` + `fast_collate` equal the per-sample path exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, default_collate

from tmkt.datasets import (
    DataConfig,
    EventDataset,
    PairedDataset,
    SampleBatch,
    StaticDataset,
    compact_collate,
    expand_like,
    fast_collate,
    prepare,
)
from tmkt.datasets.cache import FrameCache


@pytest.fixture(scope="module")
def prep(shared_data):
    return prepare(DataConfig(root=shared_data, max_per_class=3, T=4, cache=False))


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache folder for the module: the val pool's plane cache is built once."""
    return tmp_path_factory.mktemp("cache")


def _with(prep, **kw):
    prep.cfg = DataConfig(root=prep.cfg.root, max_per_class=3, T=4, **kw)
    return prep


def _epoch(ds, collate, seed: int = 5, batch: int = 7) -> list:
    g = torch.Generator().manual_seed(seed)
    return list(DataLoader(ds, batch_size=batch, shuffle=True, generator=g, collate_fn=collate))


class _PerSample(torch.utils.data.Dataset):
    """Hides `__getitems__`: the DataLoader then calls `ds[i]` one by one (the old path)."""

    def __init__(self, ds) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds[i]


def _per_sample(ds, seed: int = 5, batch: int = 7) -> list:
    """The reference: the same loader and generator, `ds[i]` per sample, `default_collate`."""
    assert not hasattr(_PerSample(ds), "__getitems__")
    return _epoch(_PerSample(ds), None, seed, batch)


def _assert_same(got: list, ref: list) -> None:
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert torch.equal(x, y)


def test_frame_cache_rows_any_order(tmp_path):
    rows = np.arange(6 * 8, dtype=np.float32).reshape(6, 2, 4)
    fc = FrameCache(tmp_path / "c.npy", {"a": 1}, [["x", 1, 2]] * 6, rows.shape, lambda i: rows[i])
    for idx in ([3, 0, 5, 0, 2], [0, 1, 2], [5], [], [-1, 2]):
        np.testing.assert_array_equal(fc.rows(idx), rows[idx])


def test_cache_built_in_chunks_equals_per_row(tmp_path, monkeypatch):
    rows = np.random.default_rng(0).random((7, 2, 3)).astype(np.float32)
    monkeypatch.setattr("tmkt.datasets.cache.BUILD_CHUNK", 3)
    fc = FrameCache(tmp_path / "c.npy", {}, [[i] for i in range(7)], rows.shape,
                    lambda i: rows[i], lambda r, out: out.__setitem__(..., rows[r.start : r.stop]))
    np.testing.assert_array_equal(fc.array, rows)


@pytest.mark.parametrize("cache", [True, False])
def test_event_loader_epoch_equals_per_sample(prep, tmp_path, cache):
    ds = EventDataset(_with(prep, cache=cache, cache_dir=tmp_path, binning="count"), "train")
    ref = _per_sample(ds)
    _assert_same(_epoch(ds, fast_collate), ref)
    _assert_same(_epoch(ds, None), ref)  # default collate on a SampleBatch: same batches
    batch = ds.__getitems__([4, 1, 4])
    assert isinstance(batch, SampleBatch) and len(batch) == 3 and batch[2][1] == ds[4][1]
    np.testing.assert_array_equal(ds.decode_many([4, 1, 4])[1], ds.decode(1))
    sub = Subset(ds, [2, 0])  # torch's Subset forwards __getitems__
    _assert_same([fast_collate(sub.__getitems__([0, 1]))], [default_collate([ds[2], ds[0]])])


@pytest.mark.parametrize("pairing", ["class", "index"])
@pytest.mark.parametrize("cache", [True, False])
def test_paired_loader_epochs_equal_per_sample(prep, shared_cache, pairing, cache):
    ds = PairedDataset(_with(prep, cache=cache, cache_dir=shared_cache, pairing=pairing), "val")
    assert (ds.static.planes is not None) == cache
    for epoch in (0, 3):
        ds.set_epoch(epoch)
        ref = _per_sample(ds, seed=epoch)
        got = _epoch(ds, fast_collate, seed=epoch)
        _assert_same(got, ref)
        assert all(b[0].is_contiguous() for b in got)  # materialised: pinnable, writable
        assert got[0][1].dtype == (torch.uint8 if cache else torch.float32)
        # the trainer's collate: each picture once, [B, 1, 1, H, W], expanded back after a move
        compact = _epoch(ds, compact_collate, seed=epoch)
        assert all(b[0].shape[1:3] == (1, 1) and b[0].is_contiguous() for b in compact)
        _assert_same([[expand_like(b[0], b[1]), *b[1:]] for b in compact], ref)
    if cache:
        again = PairedDataset(
            _with(prep, cache=True, cache_dir=shared_cache, pairing=pairing), "val"
        )
        assert not again.static.planes.built and again.static.planes.reason == ""


def test_paired_augmented_batch_equals_per_sample(prep, tmp_path):
    ds = PairedDataset(_with(prep, cache=True, cache_dir=tmp_path, augment=True), "train")
    assert ds.static.planes is None  # augmented pictures are never cached
    ds.set_epoch(2)
    _assert_same(_epoch(ds, fast_collate, seed=1), _per_sample(ds, seed=1))


def test_static_encode_many_equals_encode(prep, tmp_path):
    st = StaticDataset(_with(prep, cache=False), "val")
    idx = [5, 0, 5, 3]
    ref = np.stack([st.encode(j) for j in idx])
    np.testing.assert_array_equal(st.encode_many(idx), ref)
    _assert_same([fast_collate(st.__getitems__(idx))], [default_collate([st[j] for j in idx])])
    st.cfg = DataConfig(root=prep.cfg.root, cache=True, cache_dir=tmp_path, T=4)
    assert st.open_plane_cache().built
    np.testing.assert_array_equal(st.encode_many(idx), ref)  # planes == Pillow, exactly
    np.testing.assert_array_equal(np.stack([st.encode(j) for j in idx]), ref)


def test_worker_processes_with_fast_collate(prep, tmp_path):
    """Batches made in a worker process (memory-mapped cache opened there) arrive intact,
    paired batches with their expanded static view too."""
    ds = EventDataset(_with(prep, cache=True, cache_dir=tmp_path), "val")
    got = list(DataLoader(ds, batch_size=6, num_workers=1, collate_fn=fast_collate))
    _assert_same(got, list(DataLoader(_PerSample(ds), batch_size=6)))
    pairs = PairedDataset(_with(prep, cache=True, cache_dir=tmp_path), "val")
    got = list(DataLoader(pairs, batch_size=6, num_workers=1, collate_fn=compact_collate))
    assert got[0][0].shape[1:3] == (1, 1)
    got = [[expand_like(b[0], b[1]), *b[1:]] for b in got]
    _assert_same(got, list(DataLoader(_PerSample(pairs), batch_size=6)))


def test_pinning_needs_dense_tensors():
    """Why the collates hand out no stride-0 view: `Tensor.pin_memory` copies into a tensor of
    the same strides, and writing into an expanded layout is refused (checked here with the
    same copy on plain CPU storage); the compact frames copy fine."""
    view = torch.rand(4, 1, 1, 5, 5).expand(4, 3, 2, 5, 5)
    for t, ok in ((view, False), (view[:, :1, :1], True), (view.contiguous(), True)):
        storage = torch.empty(t.numel()).untyped_storage()
        dst = torch.empty(0).set_(storage, 0, t.shape, t.stride())
        if ok:
            dst.copy_(t)
            assert torch.equal(dst, t)
        else:
            with pytest.raises(RuntimeError, match="more than one element"):
                dst.copy_(t)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 6000, 3 * 2**30, 2**31 + 1, 2**32 - 1])
def test_draw_many_is_numpys_stream(n):
    """Bit-identical to `default_rng(e).integers(n)`, incl. n where Lemire rejects often."""
    from tmkt.datasets.draws import draw_many

    entropy = [[s, e, i, 7] for s in (0, 42, 2**32 - 1) for e in (0, 5) for i in range(60)]
    ref = [int(np.random.default_rng(x).integers(n)) for x in entropy]
    assert draw_many(entropy, [n] * len(entropy)) == ref


def test_draw_many_refuses_what_it_cannot_reproduce():
    from tmkt.datasets.draws import draw_many

    assert draw_many([[2**32, 0, 0, 7]], [5]) is None  # a word above 32 bits
    assert draw_many([[1, 0, -1, 7]], [5]) is None
    assert draw_many([[1, 0, 0, 7]], [2**32]) is None
    assert draw_many([[1, 0, 7]], [5]) is None
    assert draw_many([[2**70, 0, 0, 7]], [5]) is None
    assert draw_many([], []) == []


def test_partners_of_equals_partner_of_and_falls_back(prep, monkeypatch):
    ds = PairedDataset(_with(prep, cache=False), "train")
    idx = list(range(len(ds)))[::-1]
    for epoch in (0, 7):
        ds.set_epoch(epoch)
        assert ds.partners_of(idx) == [ds.partner_of(i) for i in idx]
    monkeypatch.setattr("tmkt.datasets.draws.draw_many", lambda e, n: [0] * len(n))
    assert ds.partners_of(idx) == [ds.partner_of(i) for i in idx]
    assert not ds.fast_draws  # a stream mismatch switches to numpy for good
