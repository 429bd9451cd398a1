"""`tmkt experiment`: methods x seeds, one run each, summarised as a markdown table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmkt.train.config import Config, apply_overrides
from tmkt.train.loop import DataFn, ModelFn, train


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
) -> ExperimentResult:
    """Train every `experiment.methods` x `experiment.seeds` run and write `results.md`.

    A run whose `results.json` exists is reused; one with only `last.pt` is resumed.
    `quick` applies the `experiment.quick` overrides first (a short smoke-scale run).
    """
    quick_over = dict(cfg.experiment.quick) if quick else {}
    if quick:
        cfg = apply_overrides(cfg, quick_over)
    exp_dir = Path(cfg.train.out_dir) / cfg.experiment.name if out_dir is None else Path(out_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    methods = list(cfg.experiment.methods)
    for seed in cfg.experiment.seeds:  # seed-major: a stopped experiment still covers every method
        for method in methods:
            # quick overrides win over a variant's (e.g. its epochs)
            run_cfg = apply_overrides(cfg, {**run_overrides(cfg, method, seed), **quick_over})
            run_dir = exp_dir / f"{method}_s{seed}"
            done = run_dir / "results.json"
            if done.is_file():
                log(f"[experiment] {method} seed {seed}: reusing {done}")
            else:
                resume = run_dir / "last.pt" if (run_dir / "last.pt").is_file() else None
                log(f"[experiment] {method} seed {seed}: training into {run_dir}"
                    + (" (resuming)" if resume else ""))
                train(run_cfg, out_dir=run_dir, resume=resume, data_fn=data_fn,
                      model_fn=model_fn)
            if done.is_file():  # rank 0 only
                runs.append({**json.loads(done.read_text()), "variant": method})
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
        header = (
            f"# {cfg.experiment.name}: {cfg.data.name}, {cfg.model.name}, "
            f"{cfg.optim.epochs} epochs{' (quick)' if quick else ''}\n\n{what}\n\n"
        )
        (exp_dir / "results.md").write_text(header + table)
        (exp_dir / "results.json").write_text(json.dumps(runs, indent=2))
    return ExperimentResult(exp_dir, runs, table)
