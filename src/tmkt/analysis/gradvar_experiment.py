"""Gradient-variance experiment (SPEC §8): TSM vs sliding vs untruncated mixing at fixed weights.

For each checkpoint along a run, the model is rebuilt from the checkpoint's stored config, K
(static, event, label) minibatches are drawn once from the paired training set, and for each
mixer the trace of the covariance of the minibatch gradients is estimated at those fixed weights
(`tmkt.analysis.gradvar.gradient_variance`). All mixers see the SAME K minibatches; only the
event masks differ, and mask k of every mixer is drawn from the same seed (seed, k). Every mixer
is run at the same expected event fraction r (TSM: r_m; untruncated: per-frame probability;
sliding: whole-sequence probability P), so at r = 0 and r = 1 all mixers give identical masks
and identical traces.

Two noise sources can be measured (`noises`):
- "batch": K different minibatches, each with its own masks: the gradient noise training sees.
- "mask": ONE minibatch repeated K times with K different masks: the noise added by mixing alone.

Checkpoints along a run: the trainer keeps only `last.pt`/`best.pt`, so `train_with_checkpoints`
trains a run in segments (resume + stop_after_epoch, public trainer API) and keeps a copy
`epoch_NNNN.pt` after every `every` epochs, plus `epoch_0000.pt` holding the initial weights.

    tmkt gradvar --run RUN_DIR [--k 32] [--batch-size 32] [--r 0.5] [--out DIR]
    tmkt gradvar --checkpoints A.pt B.pt --r 0.25 0.5 0.75 --noise batch mask
    tmkt gradvar --run RUN_DIR --train-config configs/nmnist_cnn.yaml --save-every 1 \
        --set optim.epochs=4 data.root=DATA      # train first, then measure
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from tmkt.analysis.gradvar import GradVarResult, gradient_variance
from tmkt.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tmkt.train.config import Config, apply_overrides, load_config
from tmkt.transfer import tsm
from tmkt.transfer.losses import tet_loss
from tmkt.transfer.schedules import build_schedule

__all__ = [
    "LOSSES",
    "NOISES",
    "GradVarRow",
    "checkpoint_progress",
    "draw_batch_indices",
    "find_checkpoints",
    "main",
    "add_parser",
    "run_gradvar",
    "scheduled_r",
    "train_with_checkpoints",
]

LOSSES = ("src", "method")
NOISES = ("batch", "mask")
DEFAULT_MIXERS = ("tsm", "sliding", "untruncated")
EPOCH_CKPT = re.compile(r"^epoch_(\d+)\.pt$")

DataFn = Callable[[Any, str, str], Dataset]
ModelFn = Callable[[Any, int, tuple[int, int, int]], nn.Module]


@dataclass(frozen=True)
class GradVarRow:
    """One measurement: a checkpoint x expected event fraction x mixer x noise source."""

    checkpoint: str
    epoch: int
    progress: float
    r: float
    r_from: str  # "schedule" (the run's r_m/P at this progress) or "fixed"
    mixer: str
    loss: str
    noise: str
    trace_cov: float
    mean_grad_norm_sq: float
    noise_to_signal: float
    k: int
    batch_size: int
    seed: int


CSV_FIELDS = tuple(f.name for f in fields(GradVarRow))


# --- checkpoints -----------------------------------------------------------------------------


def find_checkpoints(run_or_files: str | Path | Sequence[str | Path]) -> list[Path]:
    """Checkpoint files: a run folder's `epoch_NNNN.pt` (sorted by epoch; `last.pt` if there
    are none), or an explicit list of files (kept in the given order)."""
    if isinstance(run_or_files, (str, Path)):
        p = Path(run_or_files)
        if p.is_file():
            return [p]
        if not p.is_dir():
            raise CheckpointError(f"no such run folder or checkpoint: {p}")
        found = sorted(
            (int(m.group(1)), f) for f in p.iterdir() if (m := EPOCH_CKPT.match(f.name))
        )
        if found:
            return [f for _, f in found]
        if (p / "last.pt").is_file():
            return [p / "last.pt"]
        raise CheckpointError(
            f"{p}: no epoch_NNNN.pt or last.pt checkpoint (train with "
            "`tmkt gradvar --train-config ...` or `train_with_checkpoints` to keep several)"
        )
    files = [Path(f) for f in run_or_files]
    if not files:
        raise CheckpointError("no checkpoint given")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"checkpoint(s) not found: {', '.join(missing)}")
    return files


def checkpoint_progress(state: dict[str, Any]) -> float:
    """Training progress (iteration / total iterations) at which a checkpoint was saved."""
    if int(state.get("iteration", 0)) == 0:
        return 0.0
    history = state.get("history") or []
    if history and history[-1].get("progress") is not None:
        return float(history[-1]["progress"])
    epochs = json.loads(state["config"])["optim"]["epochs"]
    return min(1.0, int(state.get("epoch", 0)) / max(1, int(epochs)))


def scheduled_r(cfg: Config, progress: float) -> float:
    """The r_m (or P) the run's schedule gave at `progress`, clipped to [0, 1]."""
    m = cfg.method
    kw: dict[str, Any] = {}
    if m.schedule == "power":
        kw["k"] = m.schedule_k
    elif m.schedule == "constant":
        kw["value"] = m.schedule_value
    value = build_schedule(m.schedule, **kw)(min(1.0, max(0.0, float(progress))))
    return float(min(1.0, max(0.0, value)))


def train_with_checkpoints(
    cfg: Config,
    out_dir: str | Path,
    *,
    every: int = 1,
    data_fn: DataFn | None = None,
    model_fn: ModelFn | None = None,
) -> list[Path]:
    """Train `cfg` into `out_dir`, keeping `epoch_0000.pt` (initial weights) and `epoch_NNNN.pt`
    every `every` epochs (and after the last); the same run as one uninterrupted `train`
    because the trainer resumes bit for bit."""
    from tmkt.train.loop import Trainer, train

    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    out = Path(out_dir)
    epochs = cfg.optim.epochs
    trainer = Trainer(cfg, out_dir=out, data_fn=data_fn, model_fn=model_fn)
    try:
        first = save_checkpoint(trainer.state(), out / "epoch_0000.pt")
    finally:
        trainer.logger.close()
    saved = [first]
    stops = sorted({*range(every, epochs + 1, every), epochs})
    prev = first
    for e in stops:
        train(cfg, out_dir=out, resume=prev, stop_after_epoch=e, data_fn=data_fn,
              model_fn=model_fn)
        prev = save_checkpoint(load_checkpoint(out / "last.pt"), out / f"epoch_{e:04d}.pt")
        saved.append(prev)
    return saved


# --- minibatches ------------------------------------------------------------------------------


def draw_batch_indices(n: int, k: int, batch_size: int, seed: int) -> list[list[int]]:
    """K index lists of `batch_size` distinct samples each, from seeded permutations of 0..n-1
    (no sample repeats across batches until the dataset is used up)."""
    for name, v in (("n", n), ("k", k), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the training set size {n}")
    g = torch.Generator().manual_seed(int(seed))
    pool: list[int] = []
    out: list[list[int]] = []
    for _ in range(k):
        if len(pool) < batch_size:
            pool = torch.randperm(n, generator=g).tolist()
        out.append(pool[:batch_size])
        pool = pool[batch_size:]
    return out


def _load_batch(ds: Dataset, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack paired samples into (static [B,T,...], events [B,T,...], labels [B])."""
    items = [ds[i] for i in idx]
    static = torch.stack([torch.as_tensor(s) for s, _, _ in items]).float()
    events = torch.stack([torch.as_tensor(e) for _, e, _ in items]).float()
    labels = torch.as_tensor([int(y) for _, _, y in items], dtype=torch.long)
    return static, events, labels


def _mask_seed(seed: int, j: int) -> int:
    """Seed of the mask of minibatch j (shared by all mixers)."""
    return (int(seed) * 1_000_003 + 7919 * (j + 1)) % 2**63


# --- the measurement --------------------------------------------------------------------------


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device cuda requested but CUDA is not available")
    return torch.device(device)


def _check_r(r: float | Sequence[float] | None) -> list[float | None]:
    values: list[float | None] = [None] if r is None else (
        [r] if isinstance(r, (int, float)) else list(r)
    )
    if not values:
        raise ValueError("r must be None, a number, or a non-empty list of numbers")
    for v in values:
        if v is not None and not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
            raise ValueError(f"r must lie in [0, 1] (or None for the schedule), got {v!r}")
    return [None if v is None else float(v) for v in values]


def _check_choices(name: str, values: Sequence[str], valid: Sequence[str]) -> list[str]:
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise ValueError(f"{name}: give at least one of {', '.join(valid)}")
    bad = [v for v in values if v not in valid]
    if bad:
        raise ValueError(f"unknown {name} {bad}; valid: {', '.join(valid)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} lists a value twice: {values}")
    return values


class _Setup:
    """A checkpoint's config, model (and method for loss='method') on `device`."""

    def __init__(self, path: Path, state: dict[str, Any], device: torch.device,
                 data_overrides: dict[str, Any] | None, model_fn: ModelFn | None,
                 need_method: bool) -> None:
        from tmkt.train.loop import default_model_fn
        from tmkt.train.methods import TwoStreamMethod, build_method

        cfg = Config.from_json(state["config"])
        if data_overrides:
            cfg = apply_overrides(cfg, {f"data.{k}": v for k, v in data_overrides.items()})
        self.cfg = cfg
        self.classes = [str(c) for c in state["classes"]]
        self.in_shape = tuple(int(v) for v in state["in_shape"])
        model = (model_fn or default_model_fn)(cfg.model, len(self.classes), self.in_shape)
        model.load_state_dict(state["model"])
        self.model = model.to(device)
        self.method: nn.Module | None = None
        if need_method:
            method = build_method(cfg.method, self.model, cfg.data.T, cfg.optim.epochs)
            if not isinstance(method, TwoStreamMethod):
                raise ValueError(
                    f"{path}: loss 'method' needs a two-stream method (tmkt, sliding, ...), "
                    f"the checkpoint's method is {cfg.method.name!r}; use loss 'src'"
                )
            method.aux.load_state_dict(state["aux"])
            self.method = method.to(device)


def _src_loss_fn(setup: _Setup, mixer: str, r: float, seed: int,
                 device: torch.device) -> Callable[[Any], torch.Tensor]:
    """TET loss of the source head on the mixed stream (the loss the mixing acts on directly)."""
    m = setup.cfg.method

    def loss_fn(item: tuple[int, tuple[torch.Tensor, ...]]) -> torch.Tensor:
        j, (static, events, y) = item
        g = torch.Generator().manual_seed(_mask_seed(seed, j))
        mask = tsm.sample_mask(mixer, static.shape[0], static.shape[1], r, g)
        mixed = tsm.mix_by_mask(static.to(device), events.to(device), mask.to(device))
        out = setup.model(mixed.x.transpose(0, 1).contiguous())
        return tet_loss(out.logits_src.float(), y.to(device), lam=m.tet_lambda, phi=m.tet_phi)

    return loss_fn


def _method_loss_fn(setup: _Setup, mixer: str, r: float, seed: int,
                    device: torch.device) -> Callable[[Any], torch.Tensor]:
    """The full method loss (both streams, CKA, MAG/MRP) with the mixer and r replaced."""
    from tmkt.train.methods import Batch

    method = setup.method
    assert method is not None
    method.mixer = mixer  # instance attributes: only this rebuilt method is changed
    method.schedule_value = lambda progress: r  # type: ignore[method-assign]

    def loss_fn(item: tuple[int, tuple[torch.Tensor, ...]]) -> torch.Tensor:
        j, (static, events, y) = item
        method.generator.manual_seed(_mask_seed(seed, j))
        batch = Batch(label=y, events=events, static=static).to(device)
        loss, _ = method(batch, 0.0)
        return loss

    return loss_fn


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _write_csv(rows: list[GradVarRow], path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for row in rows:
            d = asdict(row)
            for key in ("progress", "r", "trace_cov", "mean_grad_norm_sq", "noise_to_signal"):
                d[key] = repr(float(d[key]))
            w.writerow(d)
    tmp.replace(path)


def format_table(rows: list[GradVarRow]) -> str:
    """A markdown table of the measurements (one line per row)."""
    head = ("| checkpoint | progress | r | noise | mixer | trace_cov | ||mean g||^2 | "
            "trace/||g||^2 |")
    lines = [head, "|---|---:|---:|---|---|---:|---:|---:|"]
    for x in rows:
        lines.append(
            f"| {x.checkpoint} | {x.progress:.3f} | {x.r:.3f} ({x.r_from}) | {x.noise} | "
            f"{x.mixer} | {_fmt(x.trace_cov)} | {_fmt(x.mean_grad_norm_sq)} | "
            f"{_fmt(x.noise_to_signal)} |"
        )
    return "\n".join(lines)


def plot_gradvar(rows: list[GradVarRow], path: str | Path) -> Path:
    """trace_cov vs progress, one line per mixer, one panel per (r setting, noise), log y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple[str, str], list[GradVarRow]] = {}
    for x in rows:
        key = ("schedule r" if x.r_from == "schedule" else f"r = {x.r:g}", x.noise)
        panels.setdefault(key, []).append(x)
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.6), squeeze=False)
    for ax, ((rlab, noise), prow) in zip(axes[0], panels.items(), strict=False):
        for mixer in dict.fromkeys(x.mixer for x in prow):
            pts = sorted((x.progress, x.trace_cov) for x in prow if x.mixer == mixer)
            ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=mixer)
        if all(x.trace_cov > 0 for x in prow):
            ax.set_yscale("log")
        ax.set_xlabel("training progress")
        ax.set_ylabel("trace Cov(minibatch gradient)")
        ax.set_title(f"{rlab}, noise: {noise}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_gradvar(
    run_dir_or_checkpoints: str | Path | Sequence[str | Path],
    *,
    mixers: Sequence[str] = DEFAULT_MIXERS,
    k: int = 32,
    batch_size: int = 32,
    r: float | Sequence[float] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    out_dir: str | Path | None = None,
    loss: str = "src",
    noises: Sequence[str] = ("batch",),
    data_overrides: dict[str, Any] | None = None,
    data_fn: DataFn | None = None,
    model_fn: ModelFn | None = None,
    echo: bool = False,
) -> list[GradVarRow]:
    """Trace of the minibatch-gradient covariance per checkpoint x r x noise x mixer.

    `r=None`: the run's scheduled r_m/P at each checkpoint's progress; a number or list: fixed
    expected event fractions. `loss`: "src" (TET of the source head on the mixed stream) or
    "method" (the checkpoint's full two-stream loss, mixer and r replaced). The model is in
    training mode (BatchNorm uses batch statistics, as the optimizer's gradients do) and its
    weights and buffers are left unchanged. With `out_dir`, writes gradvar.csv after every
    measurement (partial results survive an interruption) and gradvar.png at the end.
    """
    from tmkt.train.loop import default_data_fn

    mixers = _check_choices("mixer", mixers, tsm.MIXERS)
    noises = _check_choices("noise", noises, NOISES)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2 (a variance needs 2 minibatches), got {k!r}")
    r_values = _check_r(r)
    dev = _resolve_device(device)
    paths = find_checkpoints(run_dir_or_checkpoints)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    data_fn = data_fn or default_data_fn
    datasets: dict[str, tuple[Dataset, list[list[int]]]] = {}
    rows: list[GradVarRow] = []
    for path in paths:
        state = load_checkpoint(path, map_location="cpu")
        setup = _Setup(path, state, dev, data_overrides, model_fn, loss == "method")
        key = json.dumps(setup.cfg.data.__dict__, sort_keys=True, default=str)
        if key not in datasets:
            ds = data_fn(setup.cfg.data, "paired", "train")
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(0)  # a fixed static pairing: the same pictures for every mixer
            datasets[key] = (ds, draw_batch_indices(len(ds), k, batch_size, seed))
        ds, index_lists = datasets[key]
        classes = [str(c) for c in getattr(ds, "classes", setup.classes)]
        if classes != setup.classes:
            raise ValueError(f"{path}: the dataset's classes differ from the checkpoint's")
        progress = checkpoint_progress(state)
        module = setup.method if setup.method is not None else setup.model
        was_training = module.training
        module.train()
        params = list(module.parameters())
        try:
            for rv in r_values:
                r_used = scheduled_r(setup.cfg, progress) if rv is None else rv
                for noise in noises:
                    for mixer in mixers:
                        make = _method_loss_fn if loss == "method" else _src_loss_fn
                        loss_fn = make(setup, mixer, r_used, seed, dev)
                        res = gradient_variance(
                            module, loss_fn, _batches(ds, index_lists, noise), params=params
                        )
                        row = _row(path, state, progress, r_used, rv, mixer, loss, noise, res,
                                   batch_size, seed)
                        rows.append(row)
                        if out is not None:
                            _write_csv(rows, out / "gradvar.csv")
                        if echo:
                            print(format_table([row]).splitlines()[-1], flush=True)
        finally:
            module.train(was_training)
    if out is not None:
        plot_gradvar(rows, out / "gradvar.png")
    return rows


def _batches(ds: Dataset, index_lists: list[list[int]], noise: str) -> Iterator[Any]:
    """(j, batch) for j = 0..K-1: K distinct minibatches, or the first one K times ("mask")."""
    first = _load_batch(ds, index_lists[0]) if noise == "mask" else None
    for j, idx in enumerate(index_lists):
        yield j, (first if first is not None else _load_batch(ds, idx))


def _row(path: Path, state: dict[str, Any], progress: float, r_used: float, rv: float | None,
         mixer: str, loss: str, noise: str, res: GradVarResult, batch_size: int,
         seed: int) -> GradVarRow:
    return GradVarRow(
        checkpoint=path.name, epoch=int(state.get("epoch", 0)), progress=progress, r=r_used,
        r_from="schedule" if rv is None else "fixed", mixer=mixer, loss=loss, noise=noise,
        trace_cov=res.trace_cov, mean_grad_norm_sq=res.mean_grad_norm_sq,
        noise_to_signal=res.noise_to_signal if math.isfinite(res.noise_to_signal)
        else float("inf"),
        k=res.k, batch_size=batch_size, seed=seed,
    )


# --- command line -----------------------------------------------------------------------------


def _r_arg(s: str) -> float | None:
    if s.lower() in ("schedule", "none"):
        return None
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"r must be a number in [0, 1] or 'schedule': {s!r}"
        ) from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"r must lie in [0, 1], got {v}")
    return v


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `gradvar` to a subparsers object (`tmkt gradvar ...`); returns the parser."""
    g = subparsers.add_parser(
        "gradvar",
        help="minibatch gradient variance at fixed weights: TSM vs sliding vs untruncated",
        description="Trace of the covariance of minibatch gradients over K minibatches, per "
        "checkpoint and mixer, at the same expected event fraction (SPEC §8).",
    )
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="run folder (its epoch_NNNN.pt, else last.pt)")
    src.add_argument("--checkpoints", type=Path, nargs="+", help="checkpoint files")
    g.add_argument("--k", type=int, default=32, help="minibatches per estimate (default 32)")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--r", type=_r_arg, nargs="+", default=None, metavar="R",
                   help="expected event fraction(s) in [0,1], or 'schedule' (default: the "
                   "run's scheduled r_m at each checkpoint)")
    g.add_argument("--mixers", nargs="+", default=list(DEFAULT_MIXERS), choices=tsm.MIXERS)
    g.add_argument("--noise", nargs="+", default=["batch"], choices=NOISES,
                   help="batch: K minibatches; mask: one minibatch, K masks (mixing noise only)")
    g.add_argument("--loss", default="src", choices=LOSSES,
                   help="src: TET of the mixed stream (default); method: the full method loss")
    g.add_argument("--seed", type=int, default=0, help="seed of the minibatches and masks")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--out", type=Path, help="folder for gradvar.csv and gradvar.png "
                   "(default: the run folder, or the first checkpoint's folder)")
    g.add_argument("--data-root", type=Path, help="override the checkpoint's data.root")
    g.add_argument("--train-config", type=Path,
                   help="first train this config into --run, keeping per-epoch checkpoints")
    g.add_argument("--set", nargs="*", default=[], metavar="key.sub=value",
                   help="dotted overrides for --train-config")
    g.add_argument("--save-every", type=int, default=1, help="epochs between kept checkpoints")
    g.set_defaults(func=main)
    return g


def main(args: argparse.Namespace) -> int:
    """Run `tmkt gradvar` from parsed arguments; prints a markdown table; returns 0."""
    if args.train_config is not None:
        if args.run is None:
            raise SystemExit("tmkt gradvar: --train-config needs --run (the folder to train into)")
        cfg = load_config(args.train_config, args.set)
        if args.data_root is not None:
            cfg = apply_overrides(cfg, {"data.root": str(args.data_root)})
        train_with_checkpoints(cfg, args.run, every=args.save_every)
    elif args.set:
        raise SystemExit("tmkt gradvar: --set applies only with --train-config")
    target: Path | list[Path] = args.run if args.run is not None else list(args.checkpoints)
    out = args.out or (args.run if args.run is not None else Path(args.checkpoints[0]).parent)
    r = args.r
    if r is not None and len(r) == 1:
        r = r[0]
    overrides = {"root": str(args.data_root)} if args.data_root is not None else None
    rows = run_gradvar(
        target, mixers=args.mixers, k=args.k, batch_size=args.batch_size, r=r, seed=args.seed,
        device=args.device, out_dir=out, loss=args.loss, noises=args.noise,
        data_overrides=overrides, echo=False,
    )
    print(format_table(rows))
    print(f"wrote {Path(out) / 'gradvar.csv'} and {Path(out) / 'gradvar.png'}")
    return 0
