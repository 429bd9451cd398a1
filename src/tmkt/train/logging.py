"""Run logging: per-epoch metrics to CSV and TensorBoard, and a tqdm progress bar.

Only rank 0 logs; other ranks get a disabled logger. The CSV is rewritten from the in-memory
history each epoch, so columns that appear later (e.g. a finetune phase) stay aligned and a
resumed run continues the same file.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm


class MetricsLogger:
    """Collects one dict per epoch; writes `metrics.csv` and TensorBoard scalars."""

    def __init__(
        self,
        out_dir: str | Path | None,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.enabled = enabled and self.out_dir is not None
        self.history: list[dict[str, Any]] = list(history or [])
        self._writer = None
        if self.enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.out_dir / "tb"))

    def log_epoch(self, row: dict[str, Any]) -> None:
        """Append one epoch's metrics (must contain `epoch`) and write them out."""
        self.history.append(dict(row))
        if not self.enabled:
            return
        self.write_csv()
        if self._writer is not None:
            step = int(row["epoch"])
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._writer.add_scalar(k.replace("_", "/", 1), v, step)
            self._writer.flush()

    def write_csv(self) -> Path | None:
        """Rewrite `metrics.csv` from the history (atomically)."""
        if not self.enabled:
            return None
        cols: list[str] = []
        for row in self.history:
            cols.extend(k for k in row if k not in cols)
        path = self.out_dir / "metrics.csv"
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for row in self.history:
                w.writerow({k: _fmt(row.get(k)) for k in cols})
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_metrics(path: str | Path) -> list[dict[str, float | str]]:
    """Read a `metrics.csv` back (numbers as float, empty cells dropped)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out: dict[str, float | str] = {}
            for k, v in row.items():
                if v in ("", None):
                    continue
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
            rows.append(out)
    return rows


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


class Progress:
    """A tqdm bar over one epoch showing loss, accuracy and samples/s (silent when disabled)."""

    def __init__(self, iterable: Iterable, total: int, desc: str, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = tqdm(
            iterable, total=total, desc=desc, disable=not enabled, leave=False,
            dynamic_ncols=True,
        )

    def __iter__(self) -> Iterator:
        return iter(self._bar)

    def update(self, loss: float, acc: float, samples_per_s: float) -> None:
        """Refresh the postfix."""
        self._bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", sps=f"{samples_per_s:.1f}")

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()
