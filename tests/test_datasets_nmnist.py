"""The real N-MNIST / MNIST slice: counts, labels, pairing, exclusion of val/test pictures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmkt.datasets import DataConfig, DatasetError, PairedDataset, build_events, prepare
from tmkt.datasets.mnist import original_indices, read_idx
from tmkt.events.io import read_bin


@pytest.fixture(scope="module")
def prep(shared_data):
    return prepare(DataConfig(root=shared_data, cache=False, seed=42))


@pytest.fixture(scope="module")
def prep_index(shared_data):
    return prepare(DataConfig(root=shared_data, cache=False, seed=42, pairing="index"))


def test_classes_and_counts(prep):
    assert prep.classes == [str(d) for d in range(10)]
    n = {s: len(prep.split.event_refs(s)) for s in ("train", "val", "test")}
    assert n["train"] + n["val"] == 700 and n["test"] == 50
    per_class_val = [len(prep.split.events["val"][c]) for c in prep.classes]
    per_class_all = [len(prep.split.events["train"][c]) + v for c, v in
                     zip(prep.classes, per_class_val, strict=True)]
    assert per_class_val == [max(1, round(0.1 * k)) for k in per_class_all]
    assert all(r.startswith("Test/") for r in prep.split.event_refs("test"))
    assert not any(r.startswith("Test/") for r in prep.split.event_refs("train"))
    assert set(prep.split.event_refs("train")).isdisjoint(prep.split.event_refs("val"))
    # static: 59,700 + 9,950 pictures, MNIST test pictures only in the static test split
    assert sum(len(prep.split.static_refs(s)) for s in ("train", "val", "test")) == 69650
    assert all(r.startswith("test/") for r in prep.split.static_refs("test"))
    assert not any(r.startswith("test/") for r in prep.split.static_refs("train"))


def test_every_recording_matches_its_mnist_picture_label(prep):
    by_key = {s.key: s for s in prep.sources.static}
    matched = [e for e in prep.sources.events if e.key in by_key]
    assert len(matched) == 750  # every file in the slice has its picture
    assert all(by_key[e.key].label == e.label for e in matched)


def test_held_back_map_is_honest():
    orig = original_indices("train", 59700)
    assert orig[699] == 699 and orig[700] == 1000 and orig[-1] == 59999
    assert original_indices("test", 9950)[50] == 100
    assert original_indices("train", 59000) is None  # unknown removal: no map


def test_val_and_test_pictures_not_in_training_pool(prep):
    pool = {prep.static_by_ref[r].key for r in prep.split.static_refs("train")}
    for split in ("val", "test"):
        keys = {prep.events_by_ref[r].key for r in prep.split.event_refs(split)}
        assert keys.isdisjoint(pool)
    # concretely: N-MNIST Train file NNNNN in val -> MNIST train position NNNNN-1 excluded
    val_file = prep.split.event_refs("val")[0]  # e.g. "Train/0/00035.bin"
    pos = int(val_file.rsplit("/", 1)[1][:5]) - 1
    assert f"train/{pos:05d}" not in set(prep.split.static_refs("train"))
    assert f"train/{pos:05d}" in set(prep.split.static_refs("val"))


def test_index_pairing_gives_the_recorded_picture(prep_index, shared_data):
    ds = PairedDataset(prep_index, "val")
    images = read_idx(shared_data / "MNIST/raw/train-images-idx3-ubyte.gz")
    for i in range(0, len(ds), 7):
        item = ds.events.items[i]
        j = ds.partner_of(i)
        assert ds.static.items[j].ref == f"train/{int(item.path.stem) - 1:05d}"
        np.testing.assert_array_equal(
            ds.static._load(ds.static.items[j]), images[int(item.path.stem) - 1]
        )
    test = PairedDataset(prep_index, "test")
    assert test.static.items[test.partner_of(0)].ref.startswith("test/")


def test_class_pairing_same_class_redrawn_per_epoch_and_reproducible(prep):
    ds = PairedDataset(prep, "train")
    assert len(ds) == len(prep.split.event_refs("train"))
    idx = range(0, len(ds), 5)
    e0 = [ds.partner_of(i) for i in idx]
    assert e0 == [ds.partner_of(i) for i in idx]
    for i, j in zip(idx, e0, strict=True):
        assert ds.static.items[j].label == ds.events.items[i].label
    ds.set_epoch(1)
    e1 = [ds.partner_of(i) for i in idx]
    assert sum(a != b for a, b in zip(e0, e1, strict=True)) > 0.9 * len(e0)
    ds2 = PairedDataset(prep, "train")
    ds2.set_epoch(1)
    assert e1 == [ds2.partner_of(i) for i in idx]
    pool = {ds.static.items[j].key for j in e0 + e1}
    val_keys = {prep.events_by_ref[r].key for r in prep.split.event_refs("val")}
    assert pool.isdisjoint(val_keys)


def test_sample_shapes_and_event_counts(prep, shared_data):
    ds = PairedDataset(prep, "test")
    st, ev, y = ds[3]
    assert st.shape == ev.shape == (10, 2, 34, 34)
    assert st.dtype == ev.dtype == torch.float32
    assert y == int(ds.events.items[3].label)
    n = len(read_bin(ds.events.items[3].path).events)
    assert float(ev.sum()) == n  # norm "none", native size: every event counted once
    assert 0.0 <= float(st.min()) and float(st.max()) <= 1.0
    assert ds.in_shape == (2, 34, 34) and ds.num_classes == 10
    img = ds.static._load(ds.static.items[ds.partner_of(3)])
    assert float(st[0, 0].max()) == pytest.approx(img.max() / 255, abs=0.02)


def test_max_per_class_and_events_only(shared_data):
    cfg = DataConfig(root=shared_data, cache=False, max_per_class=2, size=(17, 17), T=4)
    ds = build_events(cfg, "train")
    assert len(ds) == 20 and sorted(set(ds.targets)) == list(range(10))
    x, y = ds[0]
    assert x.shape == (4, 2, 17, 17) and y == 0


def test_index_pairing_unknown_mnist_copy_errors(tmp_path, shared_data):
    from test_datasets_fakes import write_bin, write_idx

    for i in (1, 2):
        write_bin(tmp_path / "N-MNIST/Train/3" / f"{i:05d}.bin", seed=i)
        write_bin(tmp_path / "N-MNIST/Test/3" / f"{i:05d}.bin", seed=i)
    raw = tmp_path / "MNIST/raw"
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.full(5, 3, np.uint8))
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.full(4, 3, np.uint8))
    cfg = DataConfig(root=tmp_path, cache=False, pairing="index", val_fraction=0.0)
    with pytest.warns(UserWarning, match="unknown subset of MNIST"):
        p = prepare(cfg)
    with pytest.raises(DatasetError, match="pairing='index' is unavailable.*IDX position"):
        PairedDataset(p, "train")


def test_missing_folder_shows_layout_and_download(tmp_path):
    with pytest.raises(DatasetError, match=r"(?s)not found.*N-MNIST/Train/<label.*--download"):
        prepare(DataConfig(root=tmp_path / "nowhere"))


def test_wrong_label_folder_is_caught(tmp_path, shared_data):
    import shutil

    src = shared_data / "N-MNIST"
    for side in ("Train", "Test"):
        shutil.copytree(src / side / "1", tmp_path / "N-MNIST" / side / "1")
    moved = sorted((tmp_path / "N-MNIST/Train/1").iterdir())[0]
    (tmp_path / "N-MNIST/Train/7").mkdir()
    moved.rename(tmp_path / "N-MNIST/Train/7" / moved.name)
    with pytest.raises(DatasetError, match="disagree with the label of their MNIST picture"):
        prepare(DataConfig(root=tmp_path, static_root=shared_data))


def test_augment_only_in_train_and_reproducible_per_epoch(shared_data):
    cfg = DataConfig(root=shared_data, cache=False, max_per_class=1, augment=True)
    p = prepare(cfg)
    train, val = PairedDataset(p, "train"), PairedDataset(p, "val")
    np.testing.assert_array_equal(val[0][1].numpy(), val.events.decode(0))
    ep0 = [train[i][1].numpy() for i in range(len(train))]
    assert any(not np.array_equal(x, train.events.decode(i)) for i, x in enumerate(ep0))
    assert all(np.array_equal(x, train[i][1].numpy()) for i, x in enumerate(ep0))
    train.set_epoch(1)
    assert any(not np.array_equal(x, train[i][1].numpy()) for i, x in enumerate(ep0))


def test_datasets_pickle_for_worker_processes(prep, tmp_path):
    import pickle

    from tmkt.datasets import DataConfig as C

    prep.cfg = C(root=prep.cfg.root, cache=True, cache_dir=tmp_path, seed=42)
    try:
        ds = PairedDataset(prep, "val")
        ds.set_epoch(3)
        clone = pickle.loads(pickle.dumps(ds))
        for i in (0, len(ds) - 1):
            a, b = ds[i], clone[i]
            assert a[2] == b[2]
            np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
            np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    finally:
        prep.cfg = C(root=prep.cfg.root, cache=False, seed=42)
