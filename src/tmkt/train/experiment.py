"""`tmkt experiment`: methods x seeds (x event budgets), one run each, summarised as markdown
tables (`results.md`), `results.json` and, with budgets, `budget.png`.

With `experiment.budgets` every entry x seed also runs at each budget (`data.max_per_class`,
null: all recordings; `experiment.budget_methods` limits an entry to some budgets), in
`<entry>_n<budget|all>_s<seed>`; the report is one table per metric, one row per entry and one
column per budget (`budget_tables`), and test top-1 against the budget (`budget.png`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmkt.train.config import Config, ConfigError, apply_overrides, resolve_method_data
from tmkt.train.loop import DataFn, ModelFn, train
from tmkt.train.rundir import config_diff, format_diff


@dataclass
class ExperimentResult:
    """Per-run results and the markdown summary."""

    out_dir: Path
    runs: list[dict[str, Any]]
    table: str
    plot: Path | None = None  # budget.png (with experiment.budgets)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, sd


def summary_table(runs: list[dict[str, Any]], methods: list[str]) -> str:
    """Markdown: test top-1 (%) mean ± std over seeds, validation-selected and last epoch."""
    lines = [
        "| method | test top-1, best-on-val (%) | test top-1, last epoch (%) | seeds |",
        "|---|---|---|---|",
    ]
    for m in methods:
        rs = [r for r in runs if r.get("variant", r["method"]) == m]
        if not rs:
            continue
        best = mean_std([100 * r["test"]["top1"] for r in rs])
        last = mean_std([100 * r["test_last"]["top1"] for r in rs])
        seeds = ", ".join(str(r["seed"]) for r in rs)
        lines.append(
            f"| {m} | {best[0]:.2f} ± {best[1]:.2f} | {last[0]:.2f} ± {last[1]:.2f} | {seeds} |"
        )
    return "\n".join(lines) + "\n"


def val_table(runs: list[dict[str, Any]], methods: list[str]) -> str:
    """Markdown for a tuning sweep: validation top-1 (%) and loss, mean ± std over seeds."""
    lines = [
        "| variant | val top-1, best epoch (%) | val top-1, last epoch (%) "
        "| val loss, last epoch | runs |",
        "|---|---|---|---|---|",
    ]
    for m in methods:
        rs = [r for r in runs if r["variant"] == m and r.get("val_last")]
        if not rs:
            continue
        best = mean_std([100 * r["best_val_top1"] for r in rs])
        last = mean_std([100 * r["val_last"]["top1"] for r in rs])
        loss = mean_std([r["val_last"]["loss"] for r in rs])
        lines.append(f"| {m} | {best[0]:.2f} ± {best[1]:.2f} | {last[0]:.2f} ± {last[1]:.2f} "
                     f"| {loss[0]:.4f} ± {loss[1]:.4f} | {len(rs)} |")
    return "\n".join(lines) + "\n"


def budget_label(budget: int | None) -> str:
    """A budget as a column/tick label and run-folder part: "10", or "all" (null)."""
    return "all" if budget is None else str(budget)


def budget_run_name(entry: str, seed: int, budget: int | None) -> str:
    """The run folder of `entry` at `budget` (recordings per class) and `seed`."""
    return f"{entry}_n{budget_label(budget)}_s{seed}"


def ordered_budgets(budgets: list[int | None]) -> list[int | None]:
    """Budgets once each, ascending, "all" (null) last: the columns and the plot's x axis."""
    nums = sorted({b for b in budgets if b is not None})
    return [*nums, *([None] if None in budgets else [])]


def entry_budgets(cfg: Config, entry: str) -> list[int | None]:
    """The budgets `entry` runs at: its `experiment.budget_methods` list, else all."""
    allowed = cfg.experiment.budget_methods.get(entry)
    return [b for b in ordered_budgets(list(cfg.experiment.budgets))
            if allowed is None or b in allowed]


# the budget tables: (title, value of one run or None when it has none)
_BUDGET_METRICS: dict[str, tuple[str, Callable[[dict[str, Any]], float | None]]] = {
    "test": ("Test top-1 (%), best-on-val checkpoint",
             lambda r: 100 * r["test"]["top1"] if r.get("test") else None),
    "test_last": ("Test top-1 (%), last epoch",
                  lambda r: 100 * r["test_last"]["top1"] if r.get("test_last") else None),
    "val": ("Validation top-1 (%), best epoch (the selection metric)",
            lambda r: 100 * r["best_val_top1"] if r.get("best_val_top1") is not None else None),
    "val_last": ("Validation top-1 (%), last epoch",
                 lambda r: 100 * r["val_last"]["top1"] if r.get("val_last") else None),
}


def budget_cells(runs: list[dict[str, Any]], methods: list[str], budgets: list[int | None],
                 metric: str) -> dict[str, dict[int | None, tuple[float, float, int]]]:
    """entry -> budget -> (mean, std, n) of `metric` (a `_BUDGET_METRICS` key) over the runs
    (seeds) that have it; entries/budgets without any run are left out."""
    get = _BUDGET_METRICS[metric][1]
    out: dict[str, dict[int | None, tuple[float, float, int]]] = {}
    for m in methods:
        for b in budgets:
            vals = [v for r in runs if r["variant"] == m and r.get("budget", None) == b
                    and (v := get(r)) is not None]
            if vals:
                out.setdefault(m, {})[b] = (*mean_std(vals), len(vals))
    return out


def budget_table(runs: list[dict[str, Any]], methods: list[str], budgets: list[int | None],
                 metric: str) -> str:
    """Markdown: one row per entry, one column per budget, cells "mean ± std (n)" of `metric`
    over seeds ("-": not run, or not finished yet)."""
    cells = budget_cells(runs, methods, budgets, metric)
    lines = ["| method | " + " | ".join(budget_label(b) for b in budgets) + " |",
             "|---" * (len(budgets) + 1) + "|"]
    for m in methods:
        if m not in cells:
            continue
        row = [f"{c[0]:.2f} ± {c[1]:.2f} ({c[2]})" if (c := cells[m].get(b)) else "-"
               for b in budgets]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def budget_tables(runs: list[dict[str, Any]], methods: list[str], budgets: list[int | None],
                  report: str = "test") -> str:
    """The budget report: test top-1 best-on-val, test top-1 last epoch and best validation
    top-1 (report "val": validation top-1 best and last epoch only), each under a heading;
    columns = recordings per class."""
    metrics = ["val", "val_last"] if report == "val" else ["test", "test_last", "val"]
    return "\n".join(f"## {_BUDGET_METRICS[k][0]}\n\n" + budget_table(runs, methods, budgets, k)
                     for k in metrics)


def save_budget_report_plot(runs: list[dict[str, Any]], methods: list[str],
                            budgets: list[int | None], path: Path,
                            report: str = "test") -> Path | None:
    """`budget.png`: test top-1 best-on-val (report "val": best validation top-1) against the
    budget, one line per entry, error bars = std over seeds; None when nothing finished."""
    from tmkt.train.plots import save_budget_plot

    metric = "val" if report == "val" else "test"
    cells = budget_cells(runs, methods, budgets, metric)
    if not cells:
        return None
    labels = [budget_label(b) for b in budgets]
    series = {m: {budget_label(b): (c[0], c[1]) for b, c in cells[m].items()} for m in cells}
    return save_budget_plot(series, labels, path, ylabel=_BUDGET_METRICS[metric][0],
                            xlabel="training recordings per class")


def run_overrides(cfg: Config, entry: str, seed: int) -> dict[str, Any]:
    """The dotted overrides of one run: a method name, or a named variant's override set."""
    over: dict[str, Any] = {"train.seed": seed, "train.run_name": None}
    if entry in cfg.experiment.variants:
        over.update(cfg.experiment.variants[entry])
    else:
        over["method.name"] = entry
    if cfg.experiment.split_per_seed:
        over["data.seed"] = seed
    if cfg.experiment.report == "val":
        over["train.test"] = False  # tuning: the test split is never read
    return over


def run_experiment(
    cfg: Config,
    *,
    quick: bool = False,
    out_dir: str | Path | None = None,
    data_fn: DataFn | None = None,
    model_fn: ModelFn | None = None,
    log: Callable[[str], None] = print,
    rerun: bool = False,
) -> ExperimentResult:
    """Train every `experiment.methods` x `experiment.seeds` run and write `results.md`.

    With `experiment.budgets`, each entry x seed also runs at every budget of
    `entry_budgets` (`data.max_per_class`; null: all recordings), into
    `<entry>_n<budget|all>_s<seed>` (`budget_run_name`), seed-major (a stopped grid still covers
    every budget and entry of its first seeds); the report holds one table per metric with a
    column per budget (`budget_tables`) and `budget.png`.

    A run folder that already holds a run of the same resolved config (`rundir.config_diff`:
    settings of speed and logging aside) is reused when finished (`results.json`) and resumed
    when not (`last.pt`); one of another config stops the experiment before anything trains,
    naming the keys that differ, unless `rerun` (then it is retrained, replacing it).
    `quick` applies the `experiment.quick` overrides first (a short smoke-scale run).
    The report is rewritten after every run that trains (partial results while it runs).
    """
    quick_over = dict(cfg.experiment.quick) if quick else {}
    if quick:
        cfg = apply_overrides(cfg, quick_over)
    exp_dir = Path(cfg.train.out_dir) / cfg.experiment.name if out_dir is None else Path(out_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    methods = list(cfg.experiment.methods)
    budgets = ordered_budgets(list(cfg.experiment.budgets))
    plan = []  # seed-major: a stopped experiment still covers every method (and budget)
    for seed in cfg.experiment.seeds:
        for budget in budgets or [None]:
            for method in methods:
                # quick overrides win over a variant's (e.g. its epochs); the budget over both
                over = {**run_overrides(cfg, method, seed), **quick_over}
                if budgets:
                    if budget not in entry_budgets(cfg, method):
                        continue
                    over["data.max_per_class"] = budget
                    run_dir = exp_dir / budget_run_name(method, seed, budget)
                else:
                    run_dir = exp_dir / f"{method}_s{seed}"
                # the settings the run will save (sim_pretrain, joint: the sim encoding)
                run_cfg = resolve_method_data(apply_overrides(cfg, over))
                plan.append((method, seed, budget, run_cfg, run_dir,
                             existing_run(run_dir, run_cfg)))
    stale = [(d, why) for *_, d, (state, why) in plan if state == "other"]
    if stale and not rerun:
        shown = " | ".join(f"{d}: {why}" for d, why in stale[:4])
        raise ConfigError(
            f"{len(stale)} run folder(s) hold runs of another config ({shown}"
            f"{' | ...' if len(stale) > 4 else ''}); pass --rerun to retrain them (replacing "
            "them), or give another --out"
        )
    plot = None
    for method, seed, budget, run_cfg, run_dir, (state, _) in plan:
        done = run_dir / "results.json"
        what = f"{method} seed {seed}" + (f" budget {budget_label(budget)}" if budgets else "")
        if state == "finished":
            log(f"[experiment] {what}: reusing {done} (same config)")
        else:
            resume = run_dir / "last.pt" if state == "partial" else None
            how = {"partial": " (resuming)", "other": " (replacing a run of another config)",
                   "failed": " (replacing a run that never finished an epoch)"}.get(state, "")
            log(f"[experiment] {what}: training into {run_dir}{how}")
            train(run_cfg, out_dir=run_dir, resume=resume, data_fn=data_fn, model_fn=model_fn,
                  overwrite=state in ("other", "failed"))
        if done.is_file():  # rank 0 only
            rec = {**json.loads(done.read_text()), "variant": method}
            if budgets:
                rec["budget"] = budget
            runs.append({**rec, "config": _run_config(run_dir)})
            if state != "finished":  # partial results as runs finish
                write_report(cfg, exp_dir, runs, methods, budgets)
    if runs:
        table, plot = write_report(cfg, exp_dir, runs, methods, budgets)
    else:
        table = report_tables(cfg, runs, methods, budgets)[1]
    for r in runs:
        r.pop("config", None)
    return ExperimentResult(exp_dir, runs, table, plot)


def write_report(cfg: Config, exp_dir: Path, runs: list[dict[str, Any]], methods: list[str],
                 budgets: list[int | None]) -> tuple[str, Path | None]:
    """Write `results.md` and `results.json` (and, with budgets, `budget.png`) for the runs
    finished so far (each with its "config" as read from its folder, left out of the JSON);
    returns the markdown table(s) and the plot."""
    what, table = report_tables(cfg, runs, methods, budgets)
    plot = None
    if budgets:
        plot = save_budget_report_plot(runs, methods, budgets, exp_dir / "budget.png",
                                       cfg.experiment.report)
    header = f"# {cfg.experiment.name}: {runs_header(runs)}\n\n{what}\n\n"
    records = [{k: v for k, v in r.items() if k != "config"} for r in runs]
    _write_text(exp_dir / "results.md", header + table)
    _write_text(exp_dir / "results.json", json.dumps(records, indent=2))
    return table, plot


def report_tables(cfg: Config, runs: list[dict[str, Any]], methods: list[str],
                  budgets: list[int | None]) -> tuple[str, str]:
    """(what the numbers are, the markdown table(s)) of `runs`."""
    report = cfg.experiment.report
    if report == "val":
        what = ("Validation split only (the test split is never read); each seed "
                + ("draws its own split" if cfg.experiment.split_per_seed else "shares one split")
                + ".")
    else:
        what = ("Test split, event input only, event head; best-on-val = the checkpoint "
                f"chosen on the validation split (train.select: {cfg.train.select}).")
    if budgets:
        what += (" Columns: training recordings per class (data.max_per_class; all = every "
                 "recording); cells: mean ± std over seeds (number of seeds).")
        return what, budget_tables(runs, methods, budgets, report)
    if report == "val":
        return what, val_table(runs, methods)
    return what, summary_table(runs, methods)


def _write_text(path: Path, text: str) -> None:
    """Replace `path` atomically (a stopped experiment never leaves half a report)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _run_config(run_dir: Path) -> dict[str, Any] | None:
    """The resolved config a run folder recorded (config.yaml), or None."""
    import yaml

    p = run_dir / "config.yaml"
    if not p.is_file():
        return None
    try:
        d = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        return None
    return d if isinstance(d, dict) else None


def existing_run(run_dir: Path, run_cfg: Config) -> tuple[str, str]:
    """What `run_dir` holds for a run of `run_cfg`: ("new", ""), ("finished", ""), ("partial",
    "") (resumable), ("failed", "") (same config, no checkpoint: it stopped before its first
    epoch ended), or ("other", why): a run of another config, or files tmkt cannot read."""
    from tmkt.train.checkpoint import CheckpointError, load_checkpoint

    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return "new", ""
    saved: Any = _run_config(run_dir)
    last = run_dir / "last.pt"
    if saved is None and last.is_file():
        try:
            saved = load_checkpoint(last)["config"]
        except CheckpointError as e:
            return "other", str(e)
    if saved is None:
        return "other", "no readable config.yaml"
    try:
        diff = config_diff(saved, run_cfg)
    except ConfigError as e:
        return "other", f"its config.yaml is not valid now ({e})"
    if diff:
        return "other", format_diff(diff, 4)
    if (run_dir / "results.json").is_file():
        return "finished", ""
    return ("partial", "") if last.is_file() else ("failed", "")


def runs_header(runs: list[dict[str, Any]]) -> str:
    """"dataset, model, N epochs" from the runs' own configs (several values: each listed),
    "N epochs x S steps" when they set `optim.steps_per_epoch`, with the step limit of quick
    runs."""

    def values(get: Callable[[dict[str, Any]], Any]) -> list[str]:
        out: list[str] = []
        for r in runs:
            v = str(get(r))
            if v not in out:
                out.append(v)
        return out

    def cfg_of(r: dict[str, Any]) -> dict[str, Any]:
        return r.get("config") or {}

    data = values(lambda r: r.get("dataset"))
    model = values(lambda r: cfg_of(r).get("model", {}).get("name", r.get("model")))
    epochs = values(lambda r: r.get("epochs"))
    steps = values(lambda r: cfg_of(r).get("train", {}).get("max_steps_per_epoch"))
    per_epoch = values(lambda r: cfg_of(r).get("optim", {}).get("steps_per_epoch"))
    text = f"{'/'.join(data)}, {'/'.join(model)}, {'/'.join(epochs)} epoch"
    text += "" if epochs == ["1"] else "s"
    if per_epoch != ["None"]:  # optim.steps_per_epoch: every epoch is that many steps
        shown = ["one pass" if v == "None" else v for v in per_epoch]
        text += f" x {'/'.join(shown)} step{'' if per_epoch == ['1'] else 's'}"
    if steps != ["None"]:
        text += f" (at most {'/'.join(steps)} step{'' if steps == ['1'] else 's'} per epoch)"
    return text
