"""ncaltech101, cifar10dvs and folder on fake trees (tonic style); bad-input errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from test_datasets_fakes import (
    CIFAR_NAMES,
    make_ncaltech,
    write_aedat2,
    write_bin,
    write_cifar,
    write_image,
)

from tmkt.datasets import (
    DataConfig,
    DatasetError,
    PairedDataset,
    build_events,
    build_paired,
    build_static,
    prepare,
)
from tmkt.datasets.cifar10 import read_batch


def _ncal(tmp_path, **kw):
    return DataConfig(name="ncaltech101", root=tmp_path, size=(18, 24), T=3, cache=False, **kw)


@pytest.fixture
def ncal_root(tmp_path):
    make_ncaltech(
        tmp_path,
        {"Faces_easy": 6, "accordion": 10, "BACKGROUND_Google": 3},
        {"Faces": 4},
    )
    return tmp_path


def test_ncaltech_classes_faces_and_background(ncal_root):
    p = prepare(_ncal(ncal_root))
    assert p.classes == ["Faces_easy", "accordion"]
    assert {s.label for s in p.sources.static} == {"Faces_easy", "accordion"}  # no Faces
    p2 = prepare(_ncal(ncal_root, exclude_background=False))
    assert p2.classes == ["BACKGROUND_Google", "Faces_easy", "accordion"]
    # no official test: 10% per class (at least 1), then val 10% of the rest
    assert [len(p.split.events["test"][c]) for c in p.classes] == [1, 1]
    assert [len(p.split.events["val"][c]) for c in p.classes] == [1, 1]


def test_ncaltech_index_pairing_by_file_name_and_exclusion(ncal_root):
    cfg = _ncal(ncal_root, pairing="index")
    ds = build_paired(cfg, "train")
    for i in range(len(ds)):
        ev, st = ds.events.items[i], ds.static.items[ds.partner_of(i)]
        assert (st.label, st.path.stem) == (ev.label, ev.path.stem)
        value = 10 * int(ev.path.stem[-4:])  # the fake picture's grey level
        assert abs(int(ds.static._load(st).mean()) - value) <= 2
    p = prepare(_ncal(ncal_root))
    train_pool = set(p.split.static_refs("train"))
    for split in ("val", "test"):
        for r in p.split.event_refs(split):
            assert r.replace(".bin", ".jpg") not in train_pool
            assert r.replace(".bin", ".jpg") in set(p.split.static_refs(split))
    st, ev, y = build_paired(_ncal(ncal_root), "val")[0]
    assert st.shape == ev.shape == (3, 2, 18, 24) and y == 0


def test_ncaltech_native_size_needs_size_and_events_are_summed(ncal_root):
    ds = build_events(_ncal(ncal_root), "test")
    n = len(np.fromfile(ds.items[0].path, np.uint8)) // 5
    assert float(ds[0][0].sum()) == n  # area-summed downsampling keeps every event
    cfg = DataConfig(name="ncaltech101", root=ncal_root, cache=False)  # native 240x180
    assert build_events(cfg, "test").in_shape == (2, 180, 240)


def test_class_in_one_modality_only_lists_classes(ncal_root):
    write_bin(ncal_root / "Caltech101/zebra/image_0001.bin", size=(240, 180))
    write_image(ncal_root / "101_ObjectCategories/yak/image_0001.jpg", 5)
    with pytest.raises(DatasetError, match=r"(?s)only in events: \['zebra'\].*only in static: "
                       r"\['yak'\].*class_intersection"):
        prepare(_ncal(ncal_root))
    p = prepare(_ncal(ncal_root, class_intersection=True))
    assert p.classes == ["Faces_easy", "accordion"]


def test_empty_class_folder_is_an_error(ncal_root):
    (ncal_root / "Caltech101/emptyclass").mkdir()
    with pytest.raises(DatasetError, match=r"empty class folder.*emptyclass"):
        prepare(_ncal(ncal_root))


def test_missing_static_folder_mentions_download(tmp_path):
    write_bin(tmp_path / "Caltech101/a/image_0001.bin", size=(240, 180))
    with pytest.raises(DatasetError, match=r"(?s)Caltech101 folder not found.*"
                       r"101_ObjectCategories/<class>/image_XXXX.jpg.*download\('caltech101'"):
        prepare(_ncal(tmp_path))


@pytest.fixture
def cifar_root(tmp_path):
    for c in CIFAR_NAMES:
        for i in range(10):
            write_aedat2(tmp_path / "CIFAR10-DVS" / c / f"cifar10_{c}_{i}.aedat", seed=i)
    write_cifar(tmp_path / "cifar-10-batches-py")
    return tmp_path


def test_cifar10dvs_split_9_to_1_and_class_pairing(cifar_root):
    cfg = DataConfig(name="cifar10dvs", root=cifar_root, T=2, cache=False, size=(32, 32))
    p = prepare(cfg)
    assert p.classes == sorted(CIFAR_NAMES)
    assert all(len(p.split.events["test"][c]) == 1 for c in p.classes)  # 9:1 per class
    assert all(len(p.split.events["val"][c]) == 1 for c in p.classes)
    # CIFAR-10 test pictures are the static test split; training pool is from data_batch_*
    assert all(r.startswith("test_batch/") for r in p.split.static_refs("test"))
    assert not any(r.startswith("test_batch/") for r in p.split.static_refs("train"))
    ds = PairedDataset(p, "train")
    seen = set()
    for i in range(len(ds)):
        j = ds.partner_of(i)
        st = ds.static.items[j]
        assert st.label == ds.events.items[i].label  # never always class 0 (He et al. trap)
        assert int(ds.static._load(st)[0, 0, 0]) == CIFAR_NAMES.index(st.label)
        seen.add(st.label)
    assert len(seen) == 10
    ev, y = build_events(cfg, "test")[0]
    assert ev.shape == (2, 2, 32, 32) and float(ev.sum()) == 30
    st, y2 = build_static(cfg, "test")[0]
    assert st.shape == (2, 2, 32, 32)
    with pytest.raises(DatasetError, match="does not record which CIFAR-10 picture"):
        build_paired(DataConfig(name="cifar10dvs", root=cifar_root, pairing="index",
                                cache=False), "train")


def test_cifar_pickle_is_restricted(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DatasetError, match="refusing to load builtins.print"):
        read_batch(tmp_path / "data_batch_1")


def test_folder_family_with_stems_and_missing_static_root(tmp_path):
    for c in ("cat", "dog"):
        for i in range(5):
            write_bin(tmp_path / "ev" / c / f"s{i}.bin", seed=i)
            write_image(tmp_path / "img" / c / f"s{i}.png", 40 * i)
    cfg = DataConfig(name="folder", root=tmp_path / "ev", static_root=tmp_path / "img",
                     size=(34, 34), pairing="index", cache=False, T=2)
    ds = build_paired(cfg, "train")
    assert ds.classes == ["cat", "dog"]
    for i in range(len(ds)):
        assert ds.static.items[ds.partner_of(i)].path.stem == ds.events.items[i].path.stem
    with pytest.raises(DatasetError, match="needs static_root"):
        prepare(DataConfig(name="folder", root=tmp_path / "ev"))
    with pytest.raises(DatasetError, match=r"(?s)picture folder not found.*<class>/<image>.*"
                       r"Point the root at it"):
        prepare(DataConfig(name="folder", root=tmp_path / "ev", static_root=tmp_path / "no"))


def test_unknown_dataset_name_lists_valid():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; valid: .*cifar10dvs.*nmnist"):
        prepare(DataConfig(name="nope"))


def test_damaged_recording_names_the_file_and_leaves_no_cache(ncal_root, tmp_path):
    ds = build_events(_ncal(ncal_root), "test")
    bad = ds.items[0].path
    bad.write_bytes(bad.read_bytes()[:-2])  # not a multiple of 5 bytes
    with pytest.raises(DatasetError, match=rf"{bad.name}: cannot read events.*truncated"):
        ds[0]
    cached = DataConfig(name="ncaltech101", root=ncal_root, size=(18, 24), T=3,
                        cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match=bad.name):
        build_events(cached, "test")
    assert not list((tmp_path / "cache").glob("*"))  # no partial cache file or sidecar


def test_truncated_idx_file_is_an_error(tmp_path):
    from test_datasets_fakes import write_idx

    from tmkt.datasets.mnist import read_idx

    write_idx(tmp_path / "a.gz", np.zeros((3, 4, 4), np.uint8))
    assert read_idx(tmp_path / "a.gz").shape == (3, 4, 4)
    import gzip

    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())[:-5]
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DatasetError, match=r"b.gz: IDX header says shape \(3, 4, 4\).*truncated"):
        read_idx(tmp_path / "b.gz")
    (tmp_path / "c.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="c.gz: cannot read IDX file"):
        read_idx(tmp_path / "c.gz")
