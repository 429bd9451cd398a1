"""Trainer: run folder contents, best-on-validation selection, bit-exact resume, NaN stop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_fakes import FakeSNN, fake_data_fn, fake_model_fn

from tmkt.train.checkpoint import load_checkpoint
from tmkt.train.config import Config, apply_overrides, load_config
from tmkt.train.logging import read_metrics
from tmkt.train.loop import TrainingDiverged, lr_lambda, train

FAKE = {"data.T": 4, "optim.batch_size": 8, "optim.lr": 0.01, "optim.warmup_epochs": 1,
        "train.progress": False, "train.device": "cpu"}


def _cfg(**kw) -> Config:
    return apply_overrides(Config(), {**FAKE, **kw})


def test_lr_warmup_then_cosine() -> None:
    f = lr_lambda(total_iters=10, warmup_iters=2, min_ratio=0.0)
    assert [f(0), f(1), f(2)] == [0.5, 1.0, 1.0]
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(10) == pytest.approx(0.0, abs=1e-12)


def test_run_folder_has_everything(tmp_path: Path) -> None:
    cfg = _cfg(**{"method.name": "tmkt", "optim.epochs": 3})
    res = train(cfg, out_dir=tmp_path, data_fn=fake_data_fn, model_fn=fake_model_fn(True))
    for name in ["config.yaml", "metrics.csv", "results.json", "best.pt", "last.pt", "loss.png",
                 "accuracy.png", "schedule.png", "aux_errors.png"]:
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "tb").iterdir())
    assert load_config(tmp_path / "config.yaml") == cfg
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_l_mag", "train_mrp_err", "val_top1", "lr"} <= set(rows[0])
    # the best checkpoint: the highest validation top-1, ties to the lower validation loss
    # (train.select top1_then_loss; the fake data often ties at 100 %)
    vals = [r["val_top1"] for r in rows]
    best_epoch = max(range(len(rows)), key=lambda e: (vals[e], -rows[e]["val_loss"])) + 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["best_epoch"] == best_epoch == res.best_epoch
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best_epoch
    assert results["test"]["n"] == 16 and set(results["test"]["per_class"]) == {
        "c0", "c1", "c2", "c3"}
    assert results["best_val_top1"] == pytest.approx(max(vals), abs=1e-6)
    assert results["two_stream"] == "two passes"  # auto on the CPU
    # training worked: validation accuracy above chance (4 classes)
    assert max(vals) > 0.5
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def _equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _optim_equal(a: dict, b: dict) -> None:
    for pid, st in a["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["state"][pid][k]), (pid, k)


@pytest.mark.parametrize(("method", "workers"), [("tmkt", 0), ("finetune", 0), ("tmkt", 1)])
def test_resume_is_bit_exact(tmp_path: Path, method: str, workers: int) -> None:
    cfg = _cfg(**{"method.name": method, "optim.epochs": 4, "train.num_workers": workers})
    mf = fake_model_fn(True)
    straight = train(cfg, out_dir=tmp_path / "a", data_fn=fake_data_fn, model_fn=mf)
    stop = 4 if method == "finetune" else 2  # finetune: at the static -> event phase switch
    part = train(cfg, out_dir=tmp_path / "b", data_fn=fake_data_fn, model_fn=mf,
                 stop_after_epoch=stop)
    assert not part.finished and load_checkpoint(tmp_path / "b")["epoch"] == stop
    torch.manual_seed(12345)  # a killed process would come back with fresh RNG states
    resumed = train(cfg, out_dir=tmp_path / "b", resume=tmp_path / "b", data_fn=fake_data_fn,
                    model_fn=mf)
    _equal_states(straight.model_state, resumed.model_state)
    _equal_states(straight.aux_state, resumed.aux_state)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    _optim_equal(a["optimizer"], b["optimizer"])
    assert a["iteration"] == b["iteration"] and a["scheduler"] == b["scheduler"]
    drop = {"samples_per_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["history"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in b["history"]]
    assert len(read_metrics(tmp_path / "b" / "metrics.csv")) == (8 if method == "finetune" else 4)
    assert straight.test == resumed.test


def test_resume_real_data_and_model(tmp_path: Path, shared_data: Path) -> None:
    cfg = apply_overrides(Config(), {
        "method.name": "tmkt", "data.name": "nmnist", "data.root": str(shared_data),
        "data.T": 3, "data.max_per_class": 2, "data.cache": False,
        "model.name": "cnn_small", "model.width": 0.25, "optim.epochs": 2,
        "optim.batch_size": 10, "optim.lr": 0.01, "optim.warmup_epochs": 0,
        "train.progress": False, "train.device": "cpu", "train.tensorboard": False,
        "train.plots": False})
    straight = train(cfg, out_dir=tmp_path / "a")
    train(cfg, out_dir=tmp_path / "b", stop_after_epoch=1)
    torch.manual_seed(999)
    resumed = train(cfg, out_dir=tmp_path / "b", resume=tmp_path / "b" / "last.pt")
    _equal_states(straight.model_state, resumed.model_state)
    _equal_states(straight.aux_state, resumed.aux_state)
    assert straight.test == resumed.test and straight.test["n"] > 0
    assert straight.test["firing_rates"]
    # the run folder holds the exact split; resuming leaves the same one
    from tmkt.datasets import load_split

    split = load_split(tmp_path / "a" / "split.json")
    assert split.events == load_split(tmp_path / "b" / "split.json").events
    sizes = {k: len(split.event_refs(k)) for k in ("train", "val", "test")}
    assert sizes == {"train": 629, "val": 71, "test": 50}  # the full split, before max_per_class


class NaNAfter(FakeSNN):
    """Training forward number `n` and later return NaN logits."""

    def __init__(self, *a, n: int, **k) -> None:
        super().__init__(*a, **k)
        self.calls, self.n = 0, n

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                return type(out)(out.logits_src, out.logits_evt * float("nan"), *out[2:])
        return out


def test_nan_loss_stops_with_a_message_and_keeps_last_good(tmp_path: Path) -> None:
    cfg = _cfg(**{"method.name": "dvs", "optim.epochs": 3})  # 4 steps per epoch

    def mf(model_cfg, k, shape):
        return NaNAfter(k, shape, n=6)

    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1 .*l_evt=nan.*last\.pt"):
        train(cfg, out_dir=tmp_path, data_fn=fake_data_fn, model_fn=mf)
    kept = load_checkpoint(tmp_path / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())
    assert not (tmp_path / "results.json").exists()


def test_resume_rejects_other_method(tmp_path: Path) -> None:
    cfg = _cfg(**{"method.name": "dvs", "optim.epochs": 2})
    train(cfg, out_dir=tmp_path, data_fn=fake_data_fn, model_fn=fake_model_fn(),
          stop_after_epoch=1)
    from tmkt.train.config import ConfigError

    with pytest.raises(ConfigError, match="checkpoint is for method 'dvs'"):
        train(_cfg(**{"method.name": "tmkt", "optim.epochs": 2}), out_dir=tmp_path,
              resume=tmp_path, data_fn=fake_data_fn, model_fn=fake_model_fn())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("amp", "compile_"), [("bf16", False), ("fp16", False), ("none", True)])
def test_gpu_amp_and_compile(tmp_path: Path, amp: str, compile_: bool) -> None:
    cfg = _cfg(**{"method.name": "tmkt", "optim.epochs": 3, "train.device": "cuda",
                  "train.amp": amp, "train.compile": compile_, "train.plots": False})
    res = train(cfg, out_dir=tmp_path, data_fn=fake_data_fn, model_fn=fake_model_fn(True))
    assert all(math.isfinite(r["train_loss"]) for r in res.history)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert not any(k.startswith("_orig_mod") for k in load_checkpoint(tmp_path)["model"])


def test_amp_needs_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    from tmkt.train.config import ConfigError

    with pytest.raises(ConfigError, match="needs a CUDA device"):
        train(_cfg(**{"train.amp": "bf16"}), data_fn=fake_data_fn, model_fn=fake_model_fn())


def test_best_epoch_rules() -> None:
    """Ties in validation top-1 go to the lower loss by default; the old rule keeps the first."""
    from tmkt.train.loop import is_better

    history = [(0.90, 0.50), (0.97, 0.40), (0.97, 0.20), (0.97, 0.30), (0.96, 0.10)]

    def pick(rule: str) -> int:
        best, best_loss, epoch = -1.0, float("inf"), 0
        for e, (top1, loss) in enumerate(history, start=1):
            if is_better(rule, top1, loss, best, best_loss):
                best, best_loss, epoch = top1, loss, e
        return epoch

    assert pick("top1_then_loss") == 3
    assert pick("top1") == 2
    assert pick("loss") == 5
    from tmkt.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="train.select"):
        load_config(None, ["train.select=best"])
