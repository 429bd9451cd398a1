"""One-factor fairness of the trainer: finetune's phases, draws seeded by train.seed, the static
pool, timm's weight-decay rule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from train_fakes import fake_data_fn, fake_model_fn

from tmkt.datasets import DataConfig, PairedDataset, StaticPoolDataset, prepare
from tmkt.models import build_model
from tmkt.train.checkpoint import load_checkpoint
from tmkt.train.config import Config, ConfigError, MethodConfig, apply_overrides
from tmkt.train.logging import read_metrics
from tmkt.train.loop import param_groups, phased_lr_lambda, train
from tmkt.train.methods import build_method

FAKE = {"data.T": 4, "optim.batch_size": 8, "optim.lr": 0.01, "optim.warmup_epochs": 1,
        "train.progress": False, "train.device": "cpu", "train.plots": False,
        "train.tensorboard": False}


@pytest.fixture(scope="module")
def prep(shared_data: Path):
    return prepare(DataConfig(root=shared_data, cache=False, seed=42))


def test_phased_lr_restarts_warmup_and_cosine() -> None:
    f = phased_lr_lambda([10, 6], [2, 3], 0.0)
    assert [f(0), f(1), f(2)] == [0.5, 1.0, 1.0]
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert [f(10), f(11), f(12), f(13)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert f(16) == pytest.approx(0.0, abs=1e-12)


def test_finetune_gets_dvs_event_epochs_and_a_fresh_optimiser(tmp_path: Path) -> None:
    """2 + 2 epochs of 4 steps: the lr restarts its warm-up at the event phase, and the
    optimiser's state counts only the event phase's 8 steps."""
    cfg = apply_overrides(Config(), {**FAKE, "method.name": "finetune", "optim.epochs": 2,
                                     "method.finetune_static_epochs": 2})
    train(cfg, out_dir=tmp_path, data_fn=fake_data_fn, model_fn=fake_model_fn(True))
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert "train_l_static" in rows[1] and "train_l_evt" in rows[2]
    # the lr of the next step, logged at the end of each epoch: warm-up (1 epoch = 4 steps)
    # done; the event phase's first warm-up step (1/4); warm-up done again; cosine at its end
    lrs = [r["lr"] for r in rows]
    assert lrs == pytest.approx([0.01, 0.0025, 0.01, 0.0], abs=1e-12)
    st = load_checkpoint(tmp_path / "last.pt")["optimizer"]["state"]
    steps = {float(s["step"]) for s in st.values()}
    assert steps == {8.0}
    dvs = apply_overrides(cfg, {"method.name": "dvs"})
    res = train(dvs, out_dir=tmp_path / "dvs", data_fn=fake_data_fn, model_fn=fake_model_fn(True))
    assert len(res.history) == 2  # finetune's event phase = dvs's epochs


def test_finetune_static_epochs_checks() -> None:
    with pytest.raises(ConfigError, match="finetune_static_epochs"):
        apply_overrides(Config(), {"method.finetune_static_epochs": -1})
    with pytest.raises(ConfigError, match="finetune_phases"):
        apply_overrides(Config(), {"method.finetune_phases": "both"})
    with pytest.raises(ConfigError, match="bn_stats must be one of: event, both"):
        apply_overrides(Config(), {"method.bn_stats": "static"})
    with pytest.raises(ConfigError, match="shared"):
        apply_overrides(Config(), {"method.finetune_phases": "shared", "optim.epochs": 4,
                                   "method.finetune_static_epochs": 5})


def test_static_pool_walks_the_whole_pool(prep) -> None:
    """Each static epoch holds as many pictures as there are event recordings, drawn without
    repeats through the whole training pool (not only the recordings' partners)."""
    ds = StaticPoolDataset(prep, "train")
    n_events = len(prep.event_items("train"))
    pool = prep.static_items("train", limit=False)
    assert len(ds) == n_events == 629 and len(ds.items) == len(pool) > 50_000
    seen = []
    for e in range(3):
        ds.set_epoch(e)
        seen += [ds.picture(i) for i in range(len(ds))]
    assert len(set(seen)) == 3 * n_events  # no picture twice within one pass of the pool
    assert max(seen) > 10 * n_events  # reaches far beyond the first recordings' share
    ds.set_epoch(1)
    x, y = ds[5]
    j = ds.picture(5)
    assert y == prep.classes.index(pool[j].label)
    assert tuple(x.shape) == (10, 2, 34, 34)
    batch = ds.__getitems__([5, 6])
    assert torch.equal(batch.columns[0][0], x) and int(batch.columns[1][0]) == y


def test_train_seed_drives_pairing_not_the_split(prep) -> None:
    a, b = PairedDataset(prep, "train"), PairedDataset(prep, "train")
    a.set_draw_seed(42)
    b.set_draw_seed(1024)
    idx = list(range(64))
    pa, pb = a.partners_of(idx), b.partners_of(idx)
    assert pa != pb
    assert [a.static.items[j].label for j in pa] == [b.static.items[j].label for j in pb]
    assert [it.ref for it in a.events.items] == [it.ref for it in b.events.items]
    c = PairedDataset(prep, "train")
    c.set_draw_seed(42)
    assert c.partners_of(idx) == pa


def test_trainer_hands_train_seed_to_the_datasets(tmp_path: Path) -> None:
    seen: list[tuple[str, str, int]] = []

    def data_fn(data_cfg: Any, kind: str, split: str):
        ds = fake_data_fn(data_cfg, kind, split)
        ds.set_draw_seed = lambda s: seen.append((kind, split, s))
        return ds

    cfg = apply_overrides(Config(), {**FAKE, "method.name": "tmkt", "optim.epochs": 1,
                                     "train.seed": 1234, "train.test": False})
    train(cfg, out_dir=tmp_path, data_fn=data_fn, model_fn=fake_model_fn(True))
    assert seen == [("paired", "train", 1234)]


def test_event_augmentation_draws_equal_for_dvs_and_paired(shared_data: Path) -> None:
    """With augmentation on, a recording gets the same augmented frames in a paired batch as
    in the event-only dataset (same train seed, epoch): dvs and tmkt differ by method only."""
    cfg = DataConfig(root=shared_data, cache=False, seed=42, max_per_class=2, augment=True)
    p = prepare(cfg)
    from tmkt.datasets import EventDataset

    ev, pa = EventDataset(p, "train"), PairedDataset(p, "train")
    for d in (ev, pa):
        d.set_draw_seed(7)
        d.set_epoch(3)
    for i in (0, 5):
        assert torch.equal(ev[i][0], pa[i][1])


def test_filter_bias_and_bn_groups() -> None:
    """timm's rule: 1-d parameters (BN, biases, the s_t logits) get no weight decay."""
    model = build_model("cnn_small", 10, in_shape=(2, 16, 16), width=0.25)
    method = build_method(MethodConfig(name="tmkt"), model, 4)
    names = dict(method.named_parameters())
    flat = param_groups(method, 0.01, False)
    assert len(flat) == 1 and len(flat[0]["params"]) == len(names)
    decay, no_decay = param_groups(method, 0.01, True)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    ids = {id(p): n for n, p in names.items()}
    nd = {ids[id(p)] for p in no_decay["params"]}
    d = {ids[id(p)] for p in decay["params"]}
    assert nd | d == set(names) and not nd & d
    assert "aux.domain.c" in nd
    assert all(names[n].ndim > 1 for n in d)
    assert all(names[n].ndim <= 1 or n.endswith(".bias") for n in nd)
    assert any(".bn." in n for n in nd) and any(n.endswith(".bias") for n in nd)


def test_split_file_of_another_dataset_is_refused(tmp_path: Path, shared_data: Path) -> None:
    """data.split_file written for another dataset: an error naming the file, not a silent
    split of the wrong recordings."""
    from tmkt.datasets import DatasetError, write_split

    path = write_split(DataConfig(root=shared_data, cache=False, seed=42), tmp_path / "s.json")
    d = json.loads(path.read_text())
    d["meta"]["dataset"] = "cifar10dvs"
    path.write_text(json.dumps(d))
    with pytest.raises(DatasetError, match=rf"split file {path} is a split of dataset "
                                           r"'cifar10dvs', not 'nmnist'"):
        prepare(DataConfig(root=shared_data, cache=False, split_file=str(path)))
