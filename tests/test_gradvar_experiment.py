"""Gradient-variance experiment: checkpoints along a run, same batches for every mixer, seeds,
r = 0 / r = 1 coincidence, CSV/PNG output, untouched weights, CLI."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest
import torch
from train_fakes import fake_data_fn, fake_model_fn

from tmkt.analysis import gradvar_experiment as gx
from tmkt.train.checkpoint import CheckpointError, load_checkpoint
from tmkt.train.config import Config, apply_overrides

FAKE = {"data.T": 4, "optim.batch_size": 8, "optim.lr": 0.01, "optim.warmup_epochs": 1,
        "optim.epochs": 2, "train.max_steps_per_epoch": 2, "train.progress": False,
        "train.device": "cpu", "train.tensorboard": False, "train.plots": False,
        "method.name": "tmkt"}
MIXERS = ("tsm", "sliding", "untruncated")


def _cfg(**kw) -> Config:
    return apply_overrides(Config(), {**FAKE, **kw})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gv_run")
    gx.train_with_checkpoints(_cfg(), out, every=1, data_fn=fake_data_fn,
                              model_fn=fake_model_fn(bn=True))
    return out


def _run(run_dir: Path, **kw) -> list[gx.GradVarRow]:
    args = {"k": 4, "batch_size": 4, "seed": 3, "device": "cpu", "data_fn": fake_data_fn,
            "model_fn": fake_model_fn(bn=True)}
    args.update(kw)
    return gx.run_gradvar(run_dir, **args)


def test_checkpoints_along_the_run(run_dir: Path) -> None:
    files = gx.find_checkpoints(run_dir)
    assert [f.name for f in files] == ["epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt"]
    states = [load_checkpoint(f) for f in files]
    assert [s["epoch"] for s in states] == [0, 1, 2]
    assert [gx.checkpoint_progress(s) for s in states] == [0.0, 0.5, 1.0]
    # the weights really move between checkpoints, and the last copy equals last.pt
    w = [s["model"]["fc.weight"] for s in states]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert torch.equal(w[2], load_checkpoint(run_dir / "last.pt")["model"]["fc.weight"])


def test_same_seed_same_result_other_seed_differs(run_dir: Path) -> None:
    a = _run(run_dir, r=0.5)
    b = _run(run_dir, r=0.5)
    c = _run(run_dir, r=0.5, seed=4)
    assert [x.trace_cov for x in a] == [x.trace_cov for x in b]
    assert [x.mean_grad_norm_sq for x in a] == [x.mean_grad_norm_sq for x in b]
    assert all(x.trace_cov > 0 for x in a)
    assert [x.trace_cov for x in a] != [x.trace_cov for x in c]


@pytest.mark.parametrize("r", [0.0, 1.0])
def test_mixers_coincide_at_r0_and_r1(run_dir: Path, r: float) -> None:
    rows = _run(run_dir, r=r, noises=("batch", "mask"))
    assert len(rows) == 3 * 2 * 3
    for ckpt in {x.checkpoint for x in rows}:
        for noise in ("batch", "mask"):
            sel = [x for x in rows if x.checkpoint == ckpt and x.noise == noise]
            assert [x.mixer for x in sel] == list(MIXERS)
            assert sel[0].trace_cov == sel[1].trace_cov == sel[2].trace_cov
            assert sel[0].mean_grad_norm_sq == sel[1].mean_grad_norm_sq == sel[2].mean_grad_norm_sq
            if noise == "mask":  # one batch, deterministic masks: no variance at all
                assert sel[0].trace_cov == 0.0
            else:
                assert sel[0].trace_cov > 0.0


def test_mixers_differ_in_between(run_dir: Path) -> None:
    rows = _run(run_dir, r=0.5, noises=("mask",), mixers=MIXERS)
    last = [x for x in rows if x.checkpoint == "epoch_0002.pt"]
    traces = {x.mixer: x.trace_cov for x in last}
    assert all(v > 0 for v in traces.values())  # mixing alone adds gradient noise at r = 0.5
    assert len(set(traces.values())) == 3


def test_schedule_r_follows_progress(run_dir: Path) -> None:
    rows = _run(run_dir, r=None, mixers=("tsm",))
    assert [(x.progress, x.r, x.r_from) for x in rows] == [
        (0.0, 0.0, "schedule"), (0.5, 0.125, "schedule"), (1.0, 1.0, "schedule")]
    cfg = _cfg(**{"method.schedule": "constant", "method.schedule_value": 0.3})
    assert gx.scheduled_r(cfg, 0.9) == pytest.approx(0.3)


def test_csv_and_plot(run_dir: Path, tmp_path: Path) -> None:
    rows = _run(run_dir, r=[0.25, 0.75], out_dir=tmp_path)
    assert len(rows) == 3 * 2 * 3
    with (tmp_path / "gradvar.csv").open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(gx.CSV_FIELDS)
    assert {"checkpoint", "progress", "r", "mixer", "trace_cov", "mean_grad_norm_sq", "k"} <= set(
        table[0])
    assert len(table) == 18
    got = {(t["checkpoint"], float(t["r"]), t["mixer"]): float(t["trace_cov"]) for t in table}
    want = {(x.checkpoint, x.r, x.mixer): x.trace_cov for x in rows}
    assert got == want  # repr round-trips floats exactly
    assert {int(t["k"]) for t in table} == {4}
    assert (tmp_path / "gradvar.png").stat().st_size > 1000


def test_weights_and_buffers_unchanged(run_dir: Path) -> None:
    made: list[torch.nn.Module] = []
    base = fake_model_fn(bn=True)

    def model_fn(*a):
        m = base(*a)
        made.append(m)
        return m

    _run(run_dir, r=0.5, model_fn=model_fn, mixers=("tsm",))
    ckpts = gx.find_checkpoints(run_dir)
    assert len(made) == len(ckpts)
    for m, f in zip(made, ckpts, strict=True):
        saved = load_checkpoint(f)["model"]
        now = m.state_dict()
        assert saved.keys() == now.keys()
        for key in saved:  # weights and BatchNorm running statistics
            assert torch.equal(saved[key], now[key]), key
        assert all(p.grad is None for p in m.parameters())


def test_full_method_loss(run_dir: Path) -> None:
    last = [run_dir / "epoch_0002.pt"]
    one = _run(last, r=1.0, loss="method")
    assert one[0].trace_cov == one[1].trace_cov == one[2].trace_cov > 0
    half = _run(last, r=0.5, loss="method")
    src = _run(last, r=0.5, loss="src")
    assert [x.loss for x in half] == ["method"] * 3
    assert half[0].trace_cov != src[0].trace_cov  # more terms, more parameters


def test_batch_indices() -> None:
    idx = gx.draw_batch_indices(10, 3, 4, seed=1)
    assert [len(b) for b in idx] == [4, 4, 4]
    assert all(len(set(b)) == 4 for b in idx)
    assert len(set(idx[0]) | set(idx[1])) == 8  # no repeats until the set is used up
    assert idx == gx.draw_batch_indices(10, 3, 4, seed=1)
    assert idx != gx.draw_batch_indices(10, 3, 4, seed=2)
    with pytest.raises(ValueError, match="exceeds"):
        gx.draw_batch_indices(3, 2, 4, seed=0)


def test_bad_input(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="k must be"):
        _run(run_dir, k=1)
    with pytest.raises(ValueError, match="unknown mixer"):
        _run(run_dir, mixers=("tsm", "cutmix"))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _run(run_dir, r=1.5)
    with pytest.raises(ValueError, match="unknown loss"):
        _run(run_dir, loss="all")
    with pytest.raises(ValueError, match="exceeds"):
        _run(run_dir, batch_size=1000)
    with pytest.raises(CheckpointError, match="not found"):
        gx.find_checkpoints([tmp_path / "nope.pt"])
    with pytest.raises(CheckpointError, match="no epoch_NNNN.pt"):
        gx.find_checkpoints(tmp_path)
    with pytest.raises(ValueError, match="every"):
        gx.train_with_checkpoints(_cfg(), tmp_path, every=0)


def test_cli(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> None:
    import tmkt.train.loop as loop

    monkeypatch.setattr(loop, "default_data_fn", fake_data_fn)
    monkeypatch.setattr(loop, "default_model_fn", fake_model_fn(bn=True))
    parser = argparse.ArgumentParser(prog="tmkt")
    gx.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gradvar", "--checkpoints", str(run_dir / "epoch_0001.pt"),
                              str(run_dir / "epoch_0002.pt"), "--k", "3", "--batch-size", "4",
                              "--r", "0.5", "schedule", "--out", str(tmp_path),
                              "--device", "cpu"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert text.count("| epoch_000") == 2 * 2 * 3
    assert "0.125 (schedule)" in text and "0.500 (fixed)" in text
    with (tmp_path / "gradvar.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 12
    with pytest.raises(SystemExit):
        parser.parse_args(["gradvar", "--k", "3"])  # neither --run nor --checkpoints
    with pytest.raises(SystemExit):
        parser.parse_args(["gradvar", "--run", "x", "--r", "2"])


def test_real_backbone(tmp_path: Path) -> None:
    """cnn_small (conv-BN-LIF) through the trainer's default model factory."""
    cfg = _cfg(**{"model.name": "cnn_small", "model.width": 0.25, "optim.epochs": 1,
                  "train.max_steps_per_epoch": 1, "train.eval_every": 1})
    files = gx.train_with_checkpoints(cfg, tmp_path, data_fn=fake_data_fn)
    assert [f.name for f in files] == ["epoch_0000.pt", "epoch_0001.pt"]
    from tmkt.train.loop import default_model_fn

    made: list[torch.nn.Module] = []

    def model_fn(*a):
        made.append(default_model_fn(*a))
        return made[-1]

    rows = gx.run_gradvar([files[1]], k=3, batch_size=4, r=[1.0, 0.5], seed=0, device="cpu",
                          data_fn=fake_data_fn, model_fn=model_fn)
    at1 = [x.trace_cov for x in rows if x.r == 1.0]
    at_half = [x.trace_cov for x in rows if x.r == 0.5]
    assert at1[0] == at1[1] == at1[2] > 0
    assert len(set(at_half)) == 3 and min(at_half) > 0
    saved, now = load_checkpoint(files[1])["model"], made[0].state_dict()
    assert any("running_mean" in k for k in saved)  # BatchNorm statistics are checked too
    assert saved.keys() == now.keys() and all(torch.equal(saved[k], now[k]) for k in saved)
