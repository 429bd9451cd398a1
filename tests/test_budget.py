"""Event budgets: training-only subsets per seed, a fixed number of steps per epoch, and the
simulator baselines (`sim_pretrain`, `joint`) as one-factor methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fakes import FakeSNN, fake_data_fn, fake_model_fn

from tmkt.datasets import DataConfig, prepare
from tmkt.train.config import (
    Config,
    ConfigError,
    MethodConfig,
    apply_overrides,
    resolve_method_data,
)
from tmkt.train.loop import train
from tmkt.train.methods import Batch, build_method
from tmkt.train.sampling import CyclicSampler
from tmkt.transfer import losses

FAKE = {"data.T": 4, "optim.batch_size": 8, "optim.lr": 0.01, "optim.warmup_epochs": 1,
        "train.progress": False, "train.device": "cpu", "train.tensorboard": False,
        "train.plots": False}


def _perm(seed: int, r: int, n: int) -> list[int]:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + r * 7_919 + 17) % 2**63)
    return torch.randperm(n, generator=g).tolist()


def test_cyclic_sampler_walks_seeded_permutations_end_to_end() -> None:
    n, length, seed = 5, 4, 3
    walk = _perm(seed, 0, n) + _perm(seed, 1, n) + _perm(seed, 2, n)
    assert list(CyclicSampler(n, length, seed=seed, epoch=0)) == walk[0:4]
    assert list(CyclicSampler(n, length, seed=seed, epoch=1)) == walk[4:8]
    assert list(CyclicSampler(n, length, seed=seed, epoch=2)) == walk[8:12]
    # every pass over the data holds each sample once
    assert sorted(walk[5:10]) == list(range(n))
    # ranks split one global window between them
    r0 = list(CyclicSampler(n, 3, seed=seed, epoch=1, rank=0, world=2))
    r1 = list(CyclicSampler(n, 3, seed=seed, epoch=1, rank=1, world=2))
    assert r0 == walk[6:12:2] and r1 == walk[7:12:2]
    assert len(CyclicSampler(n, 7, seed=0, epoch=0)) == 7


def test_steps_per_epoch_fixes_the_steps_whatever_the_data(tmp_path: Path) -> None:
    # 32 fake training samples, batch 8: one pass is 4 steps; steps_per_epoch makes it 7
    cfg = apply_overrides(Config(), {**FAKE, "method.name": "dvs", "optim.epochs": 3,
                                     "optim.steps_per_epoch": 7})
    train(cfg, out_dir=tmp_path / "a", data_fn=fake_data_fn, model_fn=fake_model_fn(True))
    from tmkt.train.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "a")["iteration"] == 21
    fin = apply_overrides(cfg, {"method.name": "finetune"})  # two phases of 3 epochs x 7
    train(fin, out_dir=tmp_path / "b", data_fn=fake_data_fn, model_fn=fake_model_fn(True))
    assert load_checkpoint(tmp_path / "b")["iteration"] == 42


def test_steps_per_epoch_resume_is_bit_exact(tmp_path: Path) -> None:
    cfg = apply_overrides(Config(), {**FAKE, "method.name": "tmkt", "optim.epochs": 3,
                                     "optim.steps_per_epoch": 5})
    mf = fake_model_fn(True)
    a = train(cfg, out_dir=tmp_path / "a", data_fn=fake_data_fn, model_fn=mf)
    train(cfg, out_dir=tmp_path / "b", data_fn=fake_data_fn, model_fn=mf, stop_after_epoch=1)
    torch.manual_seed(5)
    b = train(cfg, out_dir=tmp_path / "b", resume=tmp_path / "b", data_fn=fake_data_fn,
              model_fn=mf)
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k]), k


@pytest.mark.parametrize(("over", "key"), [
    ({"optim.steps_per_epoch": 0}, "optim.steps_per_epoch"),
    ({"experiment.budgets": [5, 0]}, "experiment.budgets"),
    ({"data.max_per_class": 0}, "max_per_class"),
    ({"experiment.budgets": [5], "experiment.budget_methods": {"dvs": [10]}},
     "budget_methods"),
])
def test_bad_budget_settings_name_the_setting(over: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        apply_overrides(Config(), over)


def test_max_per_class_limits_training_only_and_follows_the_subset_seed(shared_data) -> None:
    whole = prepare(DataConfig(root=shared_data, cache=False))
    cut = prepare(DataConfig(root=shared_data, cache=False, max_per_class=3, subset_seed=1))
    cut2 = prepare(DataConfig(root=shared_data, cache=False, max_per_class=3, subset_seed=2))
    train_refs = [e.ref for e in cut.event_items("train")]
    assert len(train_refs) == 30  # 10 classes x 3
    by_class: dict[str, int] = {}
    for e in cut.event_items("train"):
        by_class[e.label] = by_class.get(e.label, 0) + 1
    assert set(by_class.values()) == {3}
    assert set(train_refs) <= {e.ref for e in whole.event_items("train")}
    assert train_refs != [e.ref for e in cut2.event_items("train")]  # each seed its own subset
    for split in ("val", "test"):  # scored on the same whole splits at every budget
        assert [e.ref for e in cut.event_items(split)] == [
            e.ref for e in whole.event_items(split)]
    # the pairing pool stays whole
    assert len(cut.static_items("train", limit=False)) == len(whole.static_items("train",
                                                                                 limit=False))


def test_trainer_draws_the_subset_with_the_training_seed(tmp_path: Path) -> None:
    seen: list[int | None] = []

    def data_fn(data_cfg, kind, split):
        seen.append(data_cfg.subset_seed)
        return fake_data_fn(data_cfg, kind, split)

    cfg = apply_overrides(Config(), {**FAKE, "method.name": "dvs", "optim.epochs": 1,
                                     "train.seed": 1024, "data.max_per_class": 5})
    train(cfg, out_dir=tmp_path / "a", data_fn=data_fn, model_fn=fake_model_fn(True))
    assert set(seen) == {1024}
    saved = (tmp_path / "a" / "config.yaml").read_text()
    assert "subset_seed: null" in saved  # the config keeps "follow train.seed"
    seen.clear()
    fixed = apply_overrides(cfg, {"data.subset_seed": 7})
    train(fixed, out_dir=tmp_path / "b", data_fn=data_fn, model_fn=fake_model_fn(True))
    assert set(seen) == {7}


T, B, K, HW = 4, 6, 3, (5, 5)


def _batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(B) % K
    events = (torch.rand(B, T, 2, *HW, generator=g) < 0.3).to(torch.uint8)
    sim = (torch.rand(B, T, 2, *HW, generator=g) < 0.3).float()
    return Batch(label=y, events=events, static=sim)


def test_joint_is_dvs_on_real_plus_simulated_recordings() -> None:
    torch.manual_seed(3)
    model = FakeSNN(K, (2, *HW))
    m = build_method(MethodConfig(name="joint"), model, T)
    batch = _batch()
    loss, terms = m.loss(batch, 0.5)
    # by hand: one stream over the concatenated batch, TET with the method's lambda and phi
    x = torch.cat([batch.events.float(), batch.static], 0).transpose(0, 1).contiguous()
    out = model(x)
    want = losses.tet_loss(out.logits_evt, torch.cat([batch.label, batch.label]),
                           lam=m.cfg.tet_lambda, phi=m.cfg.tet_phi)
    assert torch.allclose(loss, want, atol=0, rtol=1e-6)
    assert set(terms) == {"loss", "l_evt", "acc", "acc_sim"}
    # with the simulated half equal to the real half, joint's loss is dvs's
    real = batch.events.float()
    same = Batch(label=batch.label, events=real, static=real)
    dvs = build_method(MethodConfig(name="dvs"), model, T)
    assert torch.allclose(m.loss(same, 0.5)[0], dvs.loss(same, 0.5)[0], rtol=1e-6, atol=0)


def test_simulator_methods_differ_from_their_peers_by_the_encoding_only() -> None:
    base = apply_overrides(Config(), {"data.static_encoding": "hsv_v"})
    for name, peer in (("sim_pretrain", "finetune"), ("joint", "dvs")):
        cfg = resolve_method_data(apply_overrides(base, {"method.name": name}))
        assert cfg.data.static_encoding == "sim"
        other = apply_overrides(base, {"method.name": peer})
        d1, d2 = cfg.to_dict(), other.to_dict()
        assert d1["data"] == {**d2["data"], "static_encoding": "sim"}
        assert {k: v for k, v in d1["method"].items() if k != "name"} == {
            k: v for k, v in d2["method"].items() if k != "name"}
    # methods without a fixed encoding keep the configured one
    tm = resolve_method_data(apply_overrides(base, {"method.name": "tmkt"}))
    assert tm.data.static_encoding == "hsv_v"
    sp = build_method(MethodConfig(name="sim_pretrain"), FakeSNN(K, (2, *HW)), T, epochs=4)
    assert sp.phases == [4, 4] and sp.data_kind(0) == "static" and sp.data_kind(4) == "events"
    assert json.dumps(sp.phases) == json.dumps(
        build_method(MethodConfig(name="finetune"), FakeSNN(K, (2, *HW)), T, epochs=4).phases)


def test_static_pool_epoch_of_fixed_steps_draws_fresh_pictures(shared_data) -> None:
    """With optim.steps_per_epoch the trainer sets the static pool's epoch length to steps x
    batch: an epoch then draws that many pictures, none twice, the next epoch continuing."""
    from tmkt.datasets import StaticPoolDataset

    ds = StaticPoolDataset(prepare(DataConfig(root=shared_data, cache=False)), "train")
    assert len(ds) == 629  # one per training recording by default
    ds.set_epoch_length(40)
    assert len(ds) == 40
    epochs = []
    for e in (0, 1):
        ds.set_epoch(e)
        epochs.append([ds.picture(i) for i in range(40)])
    order = np.random.default_rng([ds.draw_seed, 0, 11]).permutation(len(ds.items))
    assert epochs[0] + epochs[1] == order[:80].tolist()
    assert len(set(epochs[0] + epochs[1])) == 80
