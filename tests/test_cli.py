"""CLI: train -> eval (JSON, other data roots, mismatch errors), inspect, experiment, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tmkt.cli import main
from tmkt.events.io import read_events
from tmkt.train.checkpoint import load_checkpoint, save_checkpoint


def _config(tmp: Path, data: Path, **experiment) -> Path:
    cfg = {
        "data": {"name": "nmnist", "root": str(data), "T": 3, "max_per_class": 2,
                 "cache": False},  # tiny data: building frame caches would dominate
        "model": {"name": "cnn_small", "width": 0.25},
        "method": {"name": "tmkt"},
        "optim": {"lr": 0.01, "epochs": 2, "batch_size": 10, "warmup_epochs": 0},
        "train": {"device": "cpu", "progress": False, "out_dir": str(tmp / "runs")},
    }
    if experiment:
        cfg["experiment"] = experiment
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    rc = main(["train", "--config", str(_config(tmp, shared_data)), "optim.epochs=2",
               "train.tensorboard=false", "--out", str(tmp / "run")])
    assert rc == 0
    return tmp / "run"


def test_train_writes_run_folder(trained: Path) -> None:
    for name in ["config.yaml", "metrics.csv", "results.json", "best.pt", "last.pt", "loss.png"]:
        assert (trained / name).is_file(), name
    assert yaml.safe_load((trained / "config.yaml").read_text())["optim"]["epochs"] == 2
    res = json.loads((trained / "results.json").read_text())
    assert res["method"] == "tmkt" and 0.0 <= res["test"]["top1"] <= 1.0


def _eval(capsys: pytest.CaptureFixture, *args: str) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_json(trained: Path, shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    out = _eval(capsys, "--checkpoint", str(trained / "best.pt"), "--dataset", "nmnist",
                "--data-root", str(shared_data), "--split", "test")
    assert {"top1", "top5", "n", "per_class", "firing_rates", "mean_firing_rate"} <= set(out)
    assert out["n"] == 50  # the whole official test side (max_per_class is a training setting)
    assert set(out["per_class"]) == {str(i) for i in range(10)}
    assert all(0.0 <= r <= 1.0 for r in out["firing_rates"].values()) and out["firing_rates"]
    counts = [len(list((shared_data / "N-MNIST" / "Test" / str(i)).glob("*.bin")))
              for i in range(10)]
    correct = sum((out["per_class"][str(i)] or 0.0) * counts[i] for i in range(10))
    assert correct / out["n"] == pytest.approx(out["top1"])


def _mini_root(dst: Path, shared: Path, per_class: int) -> int:
    """A data root in the N-MNIST layout holding a few linked recordings (and MNIST)."""
    n_test = 0
    for side in ("Train", "Test"):
        for label_dir in sorted((shared / "N-MNIST" / side).iterdir()):
            d = dst / "N-MNIST" / side / label_dir.name
            d.mkdir(parents=True)
            for f in sorted(label_dir.glob("*.bin"))[:per_class]:
                (d / f.name).symlink_to(f)
                n_test += side == "Test"
    (dst / "MNIST").mkdir()
    (dst / "MNIST" / "raw").symlink_to(shared / "MNIST" / "raw")
    return n_test


def test_eval_on_another_root(trained: Path, shared_data: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture) -> None:
    n = _mini_root(tmp_path / "root", shared_data, per_class=2)
    out = _eval(capsys, "--checkpoint", str(trained), "--data-root", str(tmp_path / "root"))
    assert out["n"] == n and 10 <= n < 50
    assert not (tmp_path / "root" / ".tmkt_cache").exists()  # eval caches nothing by default


def test_eval_mismatch_is_a_clear_error(trained: Path, shared_data: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    st = load_checkpoint(trained / "best.pt")
    bad = dict(st, classes=list(reversed(st["classes"])))
    save_checkpoint({k: v for k, v in bad.items() if k != "format"}, tmp_path / "c.pt")
    assert main(["eval", "--checkpoint", str(tmp_path / "c.pt"), "--data-root",
                 str(shared_data)]) != 0
    assert "classes do not match" in capsys.readouterr().err
    bad = dict(st, in_shape=[2, 48, 48])
    save_checkpoint({k: v for k, v in bad.items() if k != "format"}, tmp_path / "s.pt")
    assert main(["eval", "--checkpoint", str(tmp_path / "s.pt"), "--data-root",
                 str(shared_data)]) != 0
    assert "input shape" in capsys.readouterr().err


def test_resume_finished_run_reproduces_results(trained: Path) -> None:
    before = json.loads((trained / "results.json").read_text())
    assert main(["train", "--resume", str(trained), "train.tensorboard=false"]) == 0
    after = json.loads((trained / "results.json").read_text())
    assert after["test"] == before["test"] and after["best_epoch"] == before["best_epoch"]


def test_bad_input_errors(tmp_path: Path, shared_data: Path, capsys) -> None:
    cfg = _config(tmp_path, shared_data)
    assert main(["train", "--config", str(cfg), "optim.nope=1"]) == 2
    assert "valid keys in optim: lr" in capsys.readouterr().err
    assert main(["train", "--config", str(cfg), "method.name=magic"]) == 2
    assert "tmkt_no_cka" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.bin")]) == 2


def test_inspect(fixtures_dir: Path, capsys: pytest.CaptureFixture) -> None:
    f = fixtures_dir / "sample_nmnist.bin"
    assert main(["inspect", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    rec = read_events(f)
    assert info["events"] == len(rec.events)
    assert info["sensor_size"] == [34, 34]
    assert info["on"] == int((rec.events["p"] == 1).sum()) and info["on"] + info["off"] == len(
        rec.events)
    assert info["duration_us"] == int(rec.events["t"].max() - rec.events["t"].min())


def test_experiment_table(tmp_path: Path, shared_data: Path, capsys) -> None:
    cfg = _config(tmp_path, shared_data, name="exp", methods=["tmkt", "dvs"], seeds=[3],
                  quick={"optim.epochs": 1, "train.plots": False, "train.tensorboard": False})
    assert main(["experiment", "--config", str(cfg), "--quick"]) == 0
    out = capsys.readouterr().out
    md = (tmp_path / "runs" / "exp" / "results.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| tmkt") or
            line.startswith("| dvs")]
    assert len(rows) == 2 and all("±" in r and "| 3 |" in r for r in rows)
    assert rows[0] in out
    runs = json.loads((tmp_path / "runs" / "exp" / "results.json").read_text())
    assert sorted((r["method"], r["seed"], r["epochs"]) for r in runs) == [
        ("dvs", 3, 1), ("tmkt", 3, 1)]
    # a second call reuses finished runs instead of retraining
    assert main(["experiment", "--config", str(cfg), "--quick"]) == 0
    assert "reusing" in capsys.readouterr().out


def test_demo_config_quick(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The README demo (no download): tmkt and dvs on digits_sim, at --quick scale."""
    demo = Path(__file__).resolve().parents[1] / "configs" / "digits_sim_demo.yaml"
    rc = main(["experiment", "--config", str(demo), "--quick", f"data.root={tmp_path / 'd'}",
               f"train.out_dir={tmp_path / 'runs'}", "train.num_workers=0",
               "train.progress=false", "train.tensorboard=false", "train.plots=false"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| tmkt |" in out and "| dvs |" in out
    runs = json.loads((tmp_path / "runs" / "digits_sim_demo" / "results.json").read_text())
    assert {r["method"] for r in runs} == {"tmkt", "dvs"}
    assert all(r["test"]["n"] > 100 and r["dataset"] == "digits_sim" for r in runs)


def test_experiment_val_sweep_never_reads_test(tmp_path: Path, shared_data: Path, capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """report: val -> variants' overrides applied, each seed its own split, the test split is
    never built, and the table holds validation numbers only."""
    import tmkt.train.loop as loop

    asked: list[str] = []
    real = loop.default_data_fn

    def spy(data_cfg, kind, split):
        asked.append(split)
        return real(data_cfg, kind, split)

    cfg = _config(tmp_path, shared_data, name="sweep", methods=["lr_hi", "dvs"], seeds=[3, 4],
                  report="val", split_per_seed=True,
                  variants={"lr_hi": {"method.name": "tmkt", "optim.lr": 0.05,
                                      "method.lambda_mag": 0.5}},
                  quick={"optim.epochs": 1, "train.plots": False, "train.tensorboard": False})
    monkeypatch.setattr(loop, "default_data_fn", spy)
    assert main(["experiment", "--config", str(cfg), "--quick"]) == 0
    assert "val" in asked and "train" in asked and "test" not in asked
    md = (tmp_path / "runs" / "sweep" / "results.md").read_text()
    assert "Validation split only" in md and "test top-1" not in md
    rows = [line for line in md.splitlines() if line.startswith("| lr_hi") or
            line.startswith("| dvs")]
    assert len(rows) == 2 and all(r.endswith("| 2 |") for r in rows)
    runs = json.loads((tmp_path / "runs" / "sweep" / "results.json").read_text())
    assert all(r["test"] is None and r["val_last"]["top1"] >= 0 for r in runs)
    run = tmp_path / "runs" / "sweep" / "lr_hi_s4"
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["optim"]["lr"] == 0.05 and resolved["method"]["lambda_mag"] == 0.5
    assert resolved["data"]["seed"] == 4 and resolved["train"]["test"] is False
    split = json.loads((run / "split.json").read_text())
    other = json.loads((tmp_path / "runs" / "sweep" / "lr_hi_s3" / "split.json").read_text())
    assert split != other  # each seed drew its own validation split


def test_experiment_variant_errors(tmp_path: Path, shared_data: Path, capsys) -> None:
    cfg = _config(tmp_path, shared_data, methods=["v1"], variants={"v1": {"optim.lrr": 1.0}})
    assert main(["experiment", "--config", str(cfg), "--quick"]) != 0
    assert "optim.lrr" in capsys.readouterr().err
    cfg = _config(tmp_path, shared_data, methods=["nope"])
    assert main(["experiment", "--config", str(cfg), "--quick"]) != 0
    assert "nope" in capsys.readouterr().err


def _custom_split(shared: Path, path: Path, **changes) -> dict:
    """A split of the shared N-MNIST whose test split is the first (c % 3) + 1 `Train`
    recordings of class c (19 in all; a rebuilt split's test is the 50 official `Test` ones);
    `changes` replace top-level keys of the JSON."""
    from tmkt.datasets import DataConfig, write_split

    write_split(DataConfig(name="nmnist", root=shared, cache=False), path)
    d = json.loads(path.read_text())
    ev = d["events"]
    for i, c in enumerate(d["classes"]):
        mine = sorted(r for s in ("train", "val") for r in ev[s][c])[: i % 3 + 1]
        ev["test"][c] = mine
        for s in ("train", "val"):
            ev[s][c] = [r for r in ev[s][c] if r not in mine]
    d.update(changes)
    path.write_text(json.dumps(d))
    return d


def _n_test(split: dict, name: str = "test") -> int:
    return sum(len(refs) for refs in split["events"][name].values())


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, Path]:
    """A 1-step run trained with a custom data.split_file (max_per_class=2): (run, split file)."""
    tmp = tmp_path_factory.mktemp("cli_split")
    split = tmp / "custom_split.json"
    _custom_split(shared_data, split)
    rc = main(["train", "--config", str(_config(tmp, shared_data)), "optim.epochs=1",
               "train.max_steps_per_epoch=1", "train.tensorboard=false", "train.plots=false",
               f"data.split_file={split}", "--out", str(tmp / "run")])
    assert rc == 0
    return tmp / "run", split


def test_eval_scores_the_runs_split(custom_run: tuple[Path, Path], shared_data: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    run, custom = custom_run
    split = json.loads(custom.read_text())
    saved = json.loads((run / "split.json").read_text())
    assert saved["events"]["test"] == split["events"]["test"]
    out = _eval(capsys, "--checkpoint", str(run))
    assert out["n"] == _n_test(split) == 19  # the whole split
    # max_per_class=2 is the training split's event budget: training scored the whole split too
    assert json.loads((run / "results.json").read_text())["test"]["n"] == 19
    assert out["split_file"] == str(run / "split.json") and out["missing"] == 0
    rebuilt = _eval(capsys, "--checkpoint", str(run), "--rebuild-split")
    assert rebuilt["n"] == 50 and rebuilt["split_file"] is None  # the official Test side
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--split", "val"]) == 0
    text = capsys.readouterr().out
    assert f"n={_n_test(split, 'val')}" in text and f"split: {run / 'split.json'}" in text


def test_eval_split_file_option(custom_run: tuple[Path, Path], shared_data: Path,
                                tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run, _ = custom_run
    other = _custom_split(shared_data, tmp_path / "other.json")
    other["events"]["test"] = {c: refs[:1] for c, refs in other["events"]["test"].items()}
    (tmp_path / "other.json").write_text(json.dumps(other))
    out = _eval(capsys, "--checkpoint", str(run), "--split-file", str(tmp_path / "other.json"))
    assert out["n"] == 10 and out["split_file"] == str(tmp_path / "other.json")


def test_eval_split_on_a_copy_of_the_data(custom_run: tuple[Path, Path], shared_data: Path,
                                          tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Refs are relative to the data root: a copy gets the run's split, not its own (30 Test
    recordings here); recordings of the split absent from a partial copy are left out, counted."""
    run, _ = custom_run
    _mini_root(tmp_path / "full", shared_data, per_class=3)
    out = _eval(capsys, "--checkpoint", str(run), "--data-root", str(tmp_path / "full"))
    assert out["n"] == 19 and out["missing"] == 0
    _mini_root(tmp_path / "part", shared_data, per_class=1)
    out = _eval(capsys, "--checkpoint", str(run), "--data-root", str(tmp_path / "part"))
    assert out["n"] == 10 and out["missing"] == 9


def test_eval_old_run_without_split_json(custom_run: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    run, custom = custom_run
    st = load_checkpoint(run / "best.pt")
    save_checkpoint({k: v for k, v in st.items() if k != "format"}, tmp_path / "a" / "best.pt")
    out = _eval(capsys, "--checkpoint", str(tmp_path / "a"))
    assert out["split_file"] == str(custom) and out["n"] == 19
    assert "data.split_file" in out["split_source"] and "older run" in out["split_source"]
    cfg = json.loads(st["config"])
    cfg["data"]["split_file"] = None
    state = {k: v for k, v in st.items() if k != "format"}
    save_checkpoint(dict(state, config=json.dumps(cfg)), tmp_path / "b" / "best.pt")
    out = _eval(capsys, "--checkpoint", str(tmp_path / "b"))
    assert out["split_file"] is None and out["n"] == 50 and "rebuilt" in out["split_source"]


def test_eval_split_file_errors(custom_run: tuple[Path, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    run, custom = custom_run
    split = json.loads(custom.read_text())
    bad = {
        "missing.json": None,
        "garbled.json": "{not json",
        "cifar.json": json.dumps(dict(split, meta={"dataset": "cifar10dvs"})),
        "no_test.json": json.dumps(dict(split, events=dict(
            split["events"], test={c: [] for c in split["classes"]}))),
        "foreign.json": json.dumps(dict(split, meta={}, events=dict(split["events"], test={
            c: [f"airplane/{r}" for r in refs] for c, refs in split["events"]["test"].items()
        }))),
    }
    reasons = {"missing.json": "not found", "garbled.json": "not a valid split file",
               "cifar.json": "dataset 'cifar10dvs', not 'nmnist'",
               "no_test.json": "has no test recordings", "foreign.json": "none of the 19 test"}
    capsys.readouterr()
    for name, text in bad.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        rc = main(["eval", "--checkpoint", str(run), "--split-file", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert rc == 2, name
        assert str(tmp_path / name) in err and reasons[name] in err, err
        assert len(err.strip().splitlines()) == 1, err
