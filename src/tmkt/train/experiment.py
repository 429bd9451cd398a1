"""`tmkt experiment`: methods x seeds, one run each, summarised as a markdown table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmkt.train.config import Config, ConfigError, apply_overrides
from tmkt.train.loop import DataFn, ModelFn, train
from tmkt.train.rundir import config_diff, format_diff


@dataclass
class ExperimentResult:
    """Per-run results and the markdown summary."""

    out_dir: Path
    runs: list[dict[str, Any]]
    table: str


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

    A run folder that already holds a run of the same resolved config (`rundir.config_diff`:
    settings of speed and logging aside) is reused when finished (`results.json`) and resumed
    when not (`last.pt`); one of another config stops the experiment before anything trains,
    naming the keys that differ, unless `rerun` (then it is retrained, replacing it).
    `quick` applies the `experiment.quick` overrides first (a short smoke-scale run).
    """
    quick_over = dict(cfg.experiment.quick) if quick else {}
    if quick:
        cfg = apply_overrides(cfg, quick_over)
    exp_dir = Path(cfg.train.out_dir) / cfg.experiment.name if out_dir is None else Path(out_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    methods = list(cfg.experiment.methods)
    plan = []  # seed-major: a stopped experiment still covers every method
    for seed in cfg.experiment.seeds:
        for method in methods:
            # quick overrides win over a variant's (e.g. its epochs)
            run_cfg = apply_overrides(cfg, {**run_overrides(cfg, method, seed), **quick_over})
            run_dir = exp_dir / f"{method}_s{seed}"
            plan.append((method, seed, run_cfg, run_dir, existing_run(run_dir, run_cfg)))
    stale = [(d, why) for *_, d, (state, why) in plan if state == "other"]
    if stale and not rerun:
        shown = " | ".join(f"{d}: {why}" for d, why in stale[:4])
        raise ConfigError(
            f"{len(stale)} run folder(s) hold runs of another config ({shown}"
            f"{' | ...' if len(stale) > 4 else ''}); pass --rerun to retrain them (replacing "
            "them), or give another --out"
        )
    for method, seed, run_cfg, run_dir, (state, _) in plan:
        done = run_dir / "results.json"
        if state == "finished":
            log(f"[experiment] {method} seed {seed}: reusing {done} (same config)")
        else:
            resume = run_dir / "last.pt" if state == "partial" else None
            how = {"partial": " (resuming)", "other": " (replacing a run of another config)",
                   "failed": " (replacing a run that never finished an epoch)"}.get(state, "")
            log(f"[experiment] {method} seed {seed}: training into {run_dir}{how}")
            train(run_cfg, out_dir=run_dir, resume=resume, data_fn=data_fn, model_fn=model_fn,
                  overwrite=state in ("other", "failed"))
        if done.is_file():  # rank 0 only
            runs.append({**json.loads(done.read_text()), "variant": method,
                         "config": _run_config(run_dir)})
    if cfg.experiment.report == "val":
        table = val_table(runs, methods)
        what = ("Validation split only (the test split is never read); each seed "
                + ("draws its own split" if cfg.experiment.split_per_seed else "shares one split")
                + ".")
    else:
        table = summary_table(runs, methods)
        what = ("Test split, event input only, event head; best-on-val = the checkpoint "
                f"chosen on the validation split (train.select: {cfg.train.select}).")
    if runs:
        header = f"# {cfg.experiment.name}: {runs_header(runs)}\n\n{what}\n\n"
        for r in runs:
            r.pop("config", None)
        (exp_dir / "results.md").write_text(header + table)
        (exp_dir / "results.json").write_text(json.dumps(runs, indent=2))
    return ExperimentResult(exp_dir, runs, table)


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
    with the step limit of quick runs."""

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
    text = f"{'/'.join(data)}, {'/'.join(model)}, {'/'.join(epochs)} epoch"
    text += "" if epochs == ["1"] else "s"
    if steps != ["None"]:
        text += f" (at most {'/'.join(steps)} step{'' if steps == ['1'] else 's'} per epoch)"
    return text
