"""`tmkt experiment` with an event-budget axis: the run grid (budget_methods filtering, each
run's data.max_per_class), tables of mean ± std per budget, budget.png, reuse, refusal of
another recipe, partial results of a stopped grid and its resumption; the header's
"N epochs x S steps"."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from train_fakes import fake_data_fn, fake_model_fn

import tmkt.train.experiment as ex
from tmkt.train.config import Config, ConfigError, apply_overrides
from tmkt.train.experiment import mean_std, run_experiment

FAKE = {"data.T": 2, "optim.batch_size": 8, "optim.lr": 0.01, "optim.warmup_epochs": 0,
        "optim.epochs": 1, "train.max_steps_per_epoch": 1, "train.progress": False,
        "train.device": "cpu", "train.tensorboard": False, "train.plots": False,
        "train.num_workers": 0, "optim.steps_per_epoch": 2,
        "experiment.name": "budget", "experiment.methods": ["dvs", "abl"],
        "experiment.variants": {"abl": {"method.name": "dvs", "optim.weight_decay": 0.0}},
        "experiment.seeds": [1, 2], "experiment.budgets": [None, 2],
        "experiment.budget_methods": {"abl": [2]}}
# seed-major, budgets ascending ("all" last), entries in order; abl at budget 2 only
PLAN = ["dvs_n2_s1", "abl_n2_s1", "dvs_nall_s1", "dvs_n2_s2", "abl_n2_s2", "dvs_nall_s2"]
PNG = b"\x89PNG\r\n\x1a\n"


def _cfg(**kw) -> Config:
    return apply_overrides(Config(), {**FAKE, **kw})


def budget_data_fn(data_cfg, kind: str, split: str):
    """The fake data, its training split cut to data.max_per_class recordings per class."""
    ds = fake_data_fn(data_cfg, kind, split)
    if split == "train" and data_cfg.max_per_class is not None:
        ds.n = min(ds.n, data_cfg.max_per_class * ds.k)
    return ds


def _run(cfg: Config, out: Path, **kw) -> ex.ExperimentResult:
    return run_experiment(cfg, out_dir=out, data_fn=budget_data_fn, model_fn=fake_model_fn(),
                          log=lambda s: None, **kw)


def _counting_train(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[Path]:
    """Patch the experiment's `train`: record each run folder trained; raise at call fail_at."""
    real, calls = ex.train, []

    def spy(run_cfg, *, out_dir, **kw):
        calls.append(Path(out_dir))
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("stopped")
        return real(run_cfg, out_dir=out_dir, **kw)

    monkeypatch.setattr(ex, "train", spy)
    return calls


def _section(md: str, title: str, cols: str = "2 | all") -> dict[str, list[str]]:
    """The rows (entry -> cells) of the table under the heading that starts with `title`."""
    lines = md.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(f"## {title}"))
    rows: dict[str, list[str]] = {}
    for line in lines[i + 4:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    assert lines[i + 2] == f"| method | {cols} |"
    return rows


def _cell(values: list[float]) -> str:
    m, sd = mean_std(values)
    return f"{m:.2f} ± {sd:.2f} ({len(values)})"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ex.ExperimentResult]:
    out = tmp_path_factory.mktemp("exp")
    return out, _run(_cfg(), out)


def test_grid_folders_and_budgets(grid) -> None:
    out, res = grid
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(PLAN)
    for name in PLAN:
        saved = yaml.safe_load((out / name / "config.yaml").read_text())
        n = re.fullmatch(r".*_n(\w+)_s(\d)", name)
        assert n is not None
        assert saved["data"]["max_per_class"] == (None if n[1] == "all" else int(n[1]))
        assert saved["train"]["seed"] == int(n[2])
        assert saved["optim"]["weight_decay"] == (0.0 if name.startswith("abl") else
                                                  Config().optim.weight_decay)
    runs = json.loads((out / "results.json").read_text())
    assert [(r["variant"], r["budget"], r["seed"]) for r in runs] == [
        ("dvs", 2, 1), ("abl", 2, 1), ("dvs", None, 1),
        ("dvs", 2, 2), ("abl", 2, 2), ("dvs", None, 2)]
    assert [r["budget"] for r in res.runs] == [r["budget"] for r in runs]
    assert all("config" not in r for r in runs)


def test_tables_are_mean_std_of_the_runs(grid) -> None:
    out, res = grid
    md = (out / "results.md").read_text()
    assert md.startswith("# budget: nmnist, ")
    assert "1 epoch x 2 steps (at most 1 step per epoch)" in md.splitlines()[0]

    def res_of(name: str) -> dict:
        return json.loads((out / name / "results.json").read_text())

    tables = {
        "Test top-1 (%), best-on-val": lambda r: 100 * r["test"]["top1"],
        "Test top-1 (%), last epoch": lambda r: 100 * r["test_last"]["top1"],
        "Validation top-1 (%), best epoch": lambda r: 100 * r["best_val_top1"],
    }
    for title, get in tables.items():
        rows = _section(md, title)
        assert list(rows) == ["dvs", "abl"]
        for entry in ("dvs", "abl"):
            for col, b in enumerate(("2", "all")):
                names = [f"{entry}_n{b}_s{s}" for s in (1, 2)]
                if names[0] not in PLAN:
                    assert rows[entry][col] == "-"
                    continue
                assert rows[entry][col] == _cell([get(res_of(n)) for n in names])
    assert res.table in md
    png = out / "budget.png"
    assert res.plot == png and png.read_bytes()[:8] == PNG and png.stat().st_size > 1000


def test_second_call_reuses_every_run(grid, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = grid
    md = (out / "results.md").read_text()

    def no_training(*a, **kw):
        raise AssertionError("trained again")

    monkeypatch.setattr(ex, "train", no_training)
    res = _run(_cfg(), out)
    assert len(res.runs) == len(PLAN)
    assert (out / "results.md").read_text() == md


def test_another_recipe_is_refused(grid, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = grid
    md = (out / "results.md").read_text()
    calls = _counting_train(monkeypatch)
    with pytest.raises(ConfigError, match=r"optim\.lr") as e:
        _run(_cfg(**{"optim.lr": 0.02}), out)
    assert "6 run folder(s)" in str(e.value) and "dvs_n2_s1" in str(e.value)
    assert calls == [] and (out / "results.md").read_text() == md


def test_stopped_grid_keeps_partial_results_and_resumes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(**{"experiment.seeds": [1]})  # dvs_n2_s1, abl_n2_s1, dvs_nall_s1
    calls = _counting_train(monkeypatch, fail_at=3)
    with pytest.raises(RuntimeError, match="stopped"):
        _run(cfg, tmp_path)
    assert [p.name for p in calls] == PLAN[:3]
    runs = json.loads((tmp_path / "results.json").read_text())
    assert [(r["variant"], r["budget"]) for r in runs] == [("dvs", 2), ("abl", 2)]
    rows = _section((tmp_path / "results.md").read_text(), "Test top-1 (%), best-on-val")
    assert rows["dvs"][1] == "-" and rows["abl"][1] == "-" and "(1)" in rows["dvs"][0]
    assert (tmp_path / "budget.png").read_bytes()[:8] == PNG
    calls.clear()
    res = _run(cfg, tmp_path)
    assert [p.name for p in calls] == ["dvs_nall_s1"]  # only what had not finished
    assert [(r["variant"], r["budget"]) for r in res.runs] == [
        ("dvs", 2), ("abl", 2), ("dvs", None)]
    rows = _section((tmp_path / "results.md").read_text(), "Test top-1 (%), best-on-val")
    assert rows["dvs"][1].endswith("(1)") and rows["abl"][1] == "-"


def test_val_report_shows_validation_only(tmp_path: Path) -> None:
    cfg = _cfg(**{"experiment.seeds": [1], "experiment.report": "val",
                  "experiment.methods": ["dvs"], "experiment.budget_methods": {},
                  "experiment.budgets": [2]})
    res = _run(cfg, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "Test top-1" not in md and "Validation split only" in md
    r = res.runs[0]
    assert _section(md, "Validation top-1 (%), best epoch", "2")["dvs"] == [
        _cell([100 * r["best_val_top1"]])]
    assert _section(md, "Validation top-1 (%), last epoch", "2")["dvs"] == [
        _cell([100 * r["val_last"]["top1"]])]
    assert (tmp_path / "budget.png").read_bytes()[:8] == PNG


def test_without_budgets_nothing_changes(tmp_path: Path) -> None:
    cfg = _cfg(**{"experiment.seeds": [1], "experiment.methods": ["dvs"],
                  "experiment.budget_methods": {}, "experiment.budgets": [],
                  "optim.steps_per_epoch": None})
    res = _run(cfg, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvs_s1", "results.json", "results.md"]
    md = (tmp_path / "results.md").read_text()
    assert md.splitlines()[0].endswith(", 1 epoch (at most 1 step per epoch)")
    assert "| method | test top-1, best-on-val (%) |" in md and res.plot is None
    assert "budget" not in res.runs[0]
