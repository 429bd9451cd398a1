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
        rs = [r for r in runs if r["method"] == m]
        if not rs:
            continue
        best = mean_std([100 * r["test"]["top1"] for r in rs])
        last = mean_std([100 * r["test_last"]["top1"] for r in rs])
        seeds = ", ".join(str(r["seed"]) for r in rs)
        lines.append(
            f"| {m} | {best[0]:.2f} ± {best[1]:.2f} | {last[0]:.2f} ± {last[1]:.2f} | {seeds} |"
        )
    return "\n".join(lines) + "\n"


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
    if quick:
        cfg = apply_overrides(cfg, dict(cfg.experiment.quick))
    exp_dir = Path(cfg.train.out_dir) / cfg.experiment.name if out_dir is None else Path(out_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    methods = list(cfg.experiment.methods)
    for seed in cfg.experiment.seeds:  # seed-major: a stopped experiment still covers every method
        for method in methods:
            run_cfg = apply_overrides(
                cfg, {"method.name": method, "train.seed": seed, "train.run_name": None}
            )
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
                runs.append(json.loads(done.read_text()))
    table = summary_table(runs, methods)
    if runs:
        header = (
            f"# {cfg.experiment.name}: {cfg.data.name}, {cfg.model.name}, "
            f"{cfg.optim.epochs} epochs{' (quick)' if quick else ''}\n\n"
            "Test split, event input only, event head; best-on-val = the checkpoint with the "
            "highest validation top-1.\n\n"
        )
        (exp_dir / "results.md").write_text(header + table)
        (exp_dir / "results.json").write_text(json.dumps(runs, indent=2))
    return ExperimentResult(exp_dir, runs, table)
