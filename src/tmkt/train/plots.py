"""End-of-run PNG plots from the per-epoch history, and an experiment's accuracy against the
event budget (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_PLOTS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "loss.png": ("loss", [("train_loss", "train"), ("val_loss", "val")]),
    "accuracy.png": ("accuracy", [("train_acc", "train (event head)"), ("val_top1", "val top-1")]),
    "aux_errors.png": ("MAG / MRP error", [("train_mag_err", "MAG frame error"),
                                           ("train_mrp_err", "MRP |rho - target|")]),
}


def save_plots(
    history: list[dict[str, Any]],
    out_dir: str | Path,
    schedule: Callable[[float], float] | None = None,
    schedule_label: str = "r_m",
) -> list[Path]:
    """Write loss, accuracy, schedule and MAG/MRP-error PNGs; returns the files written.

    A plot whose columns are absent from the history (e.g. MAG error for `dvs`) is skipped.
    `schedule` maps progress in [0,1] to the scheduled quantity (drawn as a curve).
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    epochs = [row["epoch"] for row in history]
    for fname, (title, series) in _PLOTS.items():
        present = [(k, lab) for k, lab in series if any(row.get(k) is not None for row in history)]
        if not present:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for key, label in present:
            xs = [e for e, row in zip(epochs, history, strict=True) if row.get(key) is not None]
            ys = [row[key] for row in history if row.get(key) is not None]
            ax.plot(xs, ys, marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(out_dir / fname)
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    if schedule is not None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        xs = [i / 200 for i in range(201)]
        ax.plot(xs, [schedule(x) for x in xs], label=f"{schedule_label} schedule")
        seen, start = [], 0.0  # an epoch's mean drawn at the middle of its progress interval
        for row in history:
            if "train_r" in row:
                seen.append(((start + row["progress"]) / 2, row["train_r"]))
            start = row["progress"]
        if seen:
            ax.plot(*zip(*seen, strict=True), "o", ms=3, label="epoch mean (observed)")
        ax.set_xlabel("training progress")
        ax.set_ylabel(schedule_label)
        ax.set_title(f"{schedule_label} schedule")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(out_dir / "schedule.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def save_budget_plot(
    series: dict[str, dict[str, tuple[float, float]]],
    labels: list[str],
    path: str | Path,
    ylabel: str = "test top-1 (%)",
    xlabel: str = "training recordings per class",
    title: str = "accuracy against the event budget",
) -> Path:
    """One line per entry of `series` (entry -> x label -> (mean, std)) over the categorical x
    axis `labels` (e.g. "5", "10", "20", "all"), error bars = std; an entry at one budget only
    is a point. Entries are shifted apart a little so their error bars do not overlap."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    k = max(len(series), 1)
    for i, (name, pts) in enumerate(series.items()):
        shift = 0.06 * (i - (k - 1) / 2) if k > 1 else 0.0
        xs = [j + shift for j, lab in enumerate(labels) if lab in pts]
        ms = [pts[lab][0] for lab in labels if lab in pts]
        sds = [pts[lab][1] for lab in labels if lab in pts]
        ax.errorbar(xs, ms, yerr=sds, fmt="-o" if len(xs) > 1 else "o", ms=4, capsize=3,
                    label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
