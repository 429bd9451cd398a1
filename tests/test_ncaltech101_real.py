"""The `ncaltech101` family on the real Caltech101 pictures and the real N-Caltech101 recording.

Shared data: every Caltech101 class folder (102 folders: 101 categories, `Faces` and
`Faces_easy` among them, + `BACKGROUND_Google`; 3 pictures each) and one real recording of
`Faces_easy/image_0001.jpg`. The event tree is fake (one tiny `.bin` per N-Caltech101 class,
i.e. every folder but `Faces`) except `Caltech101/Faces_easy/image_0001.bin`, the real recording.
Expected numbers, from the folder listing: 101 event class folders (102 - Faces, as in
N-Caltech101); by default 100 classes (BACKGROUND_Google excluded; 300 pictures), 101 with
exclude_background=False; Faces is never a class.
Greyscale pictures among the shared ones (Pillow mode "L"; the full Caltech101 has 411 "L" and
no CMYK picture): e.g. car_side/image_0001-3, yin_yang/image_0002. CMYK is tested on a real
picture converted to a CMYK JPEG.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_datasets_fakes import write_bin

from tmkt.datasets import DataConfig, StaticDataset, build_paired, prepare
from tmkt.datasets.base import Item
from tmkt.datasets.ncaltech101 import load_image
from tmkt.datasets.sim import MEMO, picture_seed
from tmkt.events.frames import events_to_frames
from tmkt.events.io import read_events
from tmkt.events.sim import preset, simulate_batch
from tmkt.static.encode import encode_static

REAL_EVENTS = 67_445  # every event of the real recording lies inside 240x180: all are kept
GREY = ("car_side/image_0001.jpg", "yin_yang/image_0002.jpg")


@pytest.fixture(scope="module")
def caltech(shared_data) -> Path:
    root = shared_data / "caltech101" / "101_ObjectCategories"
    if not root.is_dir():
        pytest.skip(f"no Caltech101 pictures at {root}")
    return root


@pytest.fixture(scope="module")
def tree(caltech, shared_data, tmp_path_factory) -> Path:
    """Fake N-Caltech101 tree mirroring the real class folders, plus the real recording."""
    root = tmp_path_factory.mktemp("ncal")
    for i, d in enumerate(sorted(p for p in caltech.iterdir() if p.is_dir())):
        if d.name == "Faces":  # N-Caltech101 has no Faces class
            continue
        for stem in ("image_0002", "image_0003"):
            write_bin(root / "Caltech101" / d.name / f"{stem}.bin", n=20, seed=i,
                      size=(240, 180))
    real = shared_data / "fixtures" / "ncaltech101_faces_easy_0001.bin"
    shutil.copy(real, root / "Caltech101" / "Faces_easy" / "image_0001.bin")
    return root


def _cfg(tree: Path, caltech: Path, **kw) -> DataConfig:
    kw.setdefault("size", (48, 48))
    return DataConfig(name="ncaltech101", root=tree, static_root=caltech.parent, T=4,
                      cache=False, **kw)


def test_classes_match_by_name_on_the_real_folders(tree, caltech):
    folders = sorted(p.name for p in caltech.iterdir() if p.is_dir())
    assert len(folders) == 102 and {"Faces", "Faces_easy", "BACKGROUND_Google"} <= set(folders)
    p = prepare(_cfg(tree, caltech))
    want = [c for c in folders if c not in ("Faces", "BACKGROUND_Google")]
    assert p.classes == want and len(p.classes) == 100
    assert len({it.label for it in p.sources.events}) == 100
    assert {it.label for it in p.sources.static} == set(want)  # no Faces, no background
    assert len(p.sources.static) == 3 * 100
    p2 = prepare(_cfg(tree, caltech, exclude_background=False))
    assert len(p2.classes) == 101 and "BACKGROUND_Google" in p2.classes
    assert "Faces" not in p2.classes


def test_real_recording_read_and_paired_with_its_own_picture(tree, caltech):
    raw = (tree / "Caltech101/Faces_easy/image_0001.bin").read_bytes()
    assert len(raw) == 5 * REAL_EVENTS
    p = prepare(_cfg(tree, caltech))
    item = next(it for it in p.sources.events if it.ref == "Faces_easy/image_0001.bin")
    ev, sensor = p.sources.load_events(item)
    assert sensor == (240, 180) and len(ev) == REAL_EVENTS  # none outside 240x180: none dropped
    assert ev["x"].max() == 150 and ev["y"].max() == 172 and ev["t"].max() == 299_364
    np.testing.assert_array_equal(ev, read_events(item.path).events)
    ds = build_paired(_cfg(tree, caltech, pairing="index"), "train")
    i = next((k for k, it in enumerate(ds.events.items) if it.ref == item.ref), None)
    if i is None:  # the split put it in val/test: pair there
        for split in ("val", "test"):
            ds = build_paired(_cfg(tree, caltech, pairing="index"), split)
            i = next((k for k, it in enumerate(ds.events.items) if it.ref == item.ref), None)
            if i is not None:
                break
    st = ds.static.items[ds.partner_of(i)]
    assert st.path == caltech / "Faces_easy" / "image_0001.jpg"


def _hsv_v(path: Path, size=(48, 48)) -> np.ndarray:
    """Independent HSV-V: float [0, 1] channels, each resized with Pillow bilinear, max."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    chans = [np.asarray(Image.fromarray(rgb[:, :, c]).resize(size[::-1], Image.BILINEAR))
             for c in range(3)]
    return np.clip(np.stack(chans, 2), 0, 1).max(2)


def test_hsv_v_encoding_of_real_jpegs(tree, caltech):
    cfg = _cfg(tree, caltech)
    ds = StaticDataset(prepare(cfg), "train")
    for j in (0, len(ds) // 2, len(ds) - 1):
        x = ds.encode(j)
        assert x.shape == (4, 2, 48, 48) and x.dtype == np.float32
        np.testing.assert_allclose(x[0, 0], _hsv_v(ds.items[j].path), atol=1e-6)
        assert (x == x[0, 0]).all()  # the plane over T and both channels
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.01


def test_greyscale_and_cmyk_jpegs(caltech, tmp_path):
    for ref in GREY:
        path = caltech / ref
        with Image.open(path) as im:
            assert im.mode == "L"
            grey = np.asarray(im)
        rgb = load_image(Item(ref, ref.split("/")[0], None, None, path))
        assert rgb.shape == (*grey.shape, 3) and rgb.dtype == np.uint8
        assert (rgb == grey[:, :, None]).all()  # grey copied to R, G, B
        v = encode_static(rgb, 1, (48, 48))[0, 0]
        np.testing.assert_allclose(v, _hsv_v(path), atol=1e-6)
    # CMYK: a real picture saved as a CMYK JPEG (no CMYK picture in Caltech101)
    src = caltech / "accordion" / "image_0001.jpg"
    cmyk = tmp_path / "accordion_cmyk.jpg"
    with Image.open(src) as im:
        im.convert("CMYK").save(cmyk, quality=95)
    with Image.open(cmyk) as im:
        assert im.mode == "CMYK"
        want = np.asarray(im.convert("RGB"))
    got = load_image(Item("a/x.jpg", "accordion", None, None, cmyk))
    np.testing.assert_array_equal(got, want)
    with Image.open(src) as im:
        orig = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(got.astype(int) - orig).mean() < 8  # JPEG round trip: close to the original


def test_sim_encoding_of_real_jpegs_counts_the_simulated_events(tree, caltech):
    MEMO.clear()
    cfg = _cfg(tree, caltech, static_encoding="sim", binning="time", norm="none")
    prep = prepare(cfg)
    ds = StaticDataset(prep, "val")
    assert ds.sim is not None and ds.sim.sim.params == preset("ncaltech101")
    for j in (0, len(ds) - 1):
        it = ds.items[j]
        events = simulate_batch([load_image(it)], preset("ncaltech101"),
                                seeds=[picture_seed(0, it.ref)])[0]
        assert len(events) > 5_000
        x = ds.encode(j)
        assert x.shape == (4, 2, 48, 48)
        assert x.sum() == len(events)  # area-summed 240x180 -> 48x48: every event counted
        want = events_to_frames(events, (240, 180), 4, size=(48, 48), binning="time",
                                norm="none")
        np.testing.assert_array_equal(x, want)
    MEMO.clear()


def test_fitted_preset_matches_the_real_recording(caltech, shared_data):
    """The `ncaltech101` preset (fitted by bench/fit_ncaltech101_preset.py) on the recorded
    picture vs the real recording, 3 seeds. Fitted values (bench/results/
    fit_ncaltech101_preset.json): 67,232 events (real 67,445), ON 0.495 (0.501), duration
    279.1 ms (299.4), profile r 0.975, extent 154 x 177 (150 x 170), full box 155 x 179 from
    x = y = 0 (151 x 173), no event outside the picture's footprint. Tolerances: events within
    5%, ON fraction within 0.03, duration within 10%, profile r > 0.95; events start at x = y = 0
    (anchor top_left) and stay inside the footprint computed by hand (the 150 x 173 picture,
    fit_size, moved by the path: x 0..5, y 0..5.5 -> x <= 149 + 5, y <= 172 + 6); the
    0.5-99.5 % extent within 8 px (width) and 10 px (height) of the real one (the saccade span
    is 5 x 5.5 px)."""
    real = read_events(shared_data / "fixtures/ncaltech101_faces_easy_0001.bin",
                       sensor_size=(240, 180)).events
    picture = load_image(Item("f", "Faces_easy", None, None,
                              caltech / "Faces_easy" / "image_0001.jpg"))
    p = preset("ncaltech101")
    assert (p.anchor, p.surround, p.surround_value) == ("top_left", "constant", 0.5)
    sims = simulate_batch([picture] * 3, p, seeds=[[7, s] for s in range(3)])
    n = np.mean([len(e) for e in sims])
    assert abs(n / len(real) - 1) < 0.05
    assert abs(np.mean([e["p"].mean() for e in sims]) - real["p"].mean()) < 0.03
    dur = np.mean([e["t"].max() - e["t"].min() for e in sims])
    assert abs(dur / (real["t"].max() - real["t"].min()) - 1) < 0.10
    bins = np.arange(0, 300_001, 10_000)
    pr = np.histogram(real["t"], bins)[0]
    ps = np.mean([np.histogram(e["t"], bins)[0] for e in sims], 0)
    assert np.corrcoef(pr, ps)[0, 1] > 0.95

    def extent(ev):
        return [np.percentile(ev[k], 99.5) - np.percentile(ev[k], 0.5) + 1 for k in "xy"]

    rw, rh = extent(real)
    assert (rw, rh) == (150, 170)
    for e in sims:
        assert e["x"].min() == 0 and e["y"].min() == 0
        assert e["x"].max() <= 154 and e["y"].max() <= 178
        w, h = extent(e)
        assert abs(w - rw) <= 8 and abs(h - rh) <= 10


def test_a_truncated_picture_stops_naming_it_or_is_skipped_and_counted(caltech, tmp_path,
                                                                         capsys) -> None:
    """data.options.bad_pictures: stop (default) names the file; skip leaves it out, counted."""
    from tmkt.datasets.base import DatasetError

    pics = tmp_path / "caltech101" / "101_ObjectCategories"
    for c in ("anchor", "ant"):
        for stem in ("image_0001", "image_0002"):
            write_bin(tmp_path / "ev" / "Caltech101" / c / f"{stem}.bin", n=20, seed=1,
                      size=(240, 180))
            (pics / c).mkdir(parents=True, exist_ok=True)
            shutil.copy(caltech / c / f"{stem}.jpg", pics / c / f"{stem}.jpg")
    bad = pics / "ant" / "image_0002.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # a truncated JPEG
    kw = dict(name="ncaltech101", root=tmp_path / "ev", static_root=pics.parent, T=4,
              size=(48, 48), cache=False, val_fraction=0.0, test_fraction=0.0)
    ds = StaticDataset(prepare(DataConfig(**kw)), "train")
    j = [str(it.path) for it in ds.items].index(str(bad))
    with pytest.raises(DatasetError, match=r"ant/image_0002\.jpg: cannot read picture"):
        ds.encode(j)
    capsys.readouterr()
    skip = prepare(DataConfig(**kw, options={"bad_pictures": "skip"}))
    assert sorted(str(s.path) for s in skip.sources.static) == sorted(
        str(p) for p in pics.rglob("*.jpg") if p != bad)
    err = capsys.readouterr().err
    assert "skipped 1 unreadable picture(s) of 4" in err and "ant/image_0002.jpg" in err
    with pytest.raises(DatasetError, match="data.options.bad_pictures must be one of"):
        prepare(DataConfig(**kw, options={"bad_pictures": "ignore"}))
