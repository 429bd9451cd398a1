"""The training loop: `train(cfg)` runs one method on one seed, resumable bit for bit on CPU.

Per epoch: train (DistributedSampler, one DDP-wrapped method), validate on the validation split
(rank 0), log, checkpoint `last.pt` and, when validation top-1 improves, `best.pt`. At the end:
plots and a test evaluation of the best-on-validation weights (and of the last ones) in
`results.json`. Only rank 0 writes files.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from tmkt.allocator import set_cpu_allocator
from tmkt.train import distributed as D
from tmkt.train.checkpoint import (
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tmkt.train.config import Config, ConfigError, resolve_method_data, save_config
from tmkt.train.evaluate import autocast_context, evaluate
from tmkt.train.logging import MetricsLogger, Progress
from tmkt.train.methods import Batch, Method, build_method
from tmkt.train.plots import save_plots
from tmkt.train.rundir import check_resume_config, check_run_dir, clear_run
from tmkt.train.sampling import CyclicSampler

DataFn = Callable[[Any, str, str], Dataset]  # (DataConfig, kind "paired"|"events", split)
ModelFn = Callable[[Any, int, tuple[int, int, int]], nn.Module]  # (ModelConfig, K, in_shape)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the message names the step, the terms and the checkpoint."""


@dataclass
class RunResult:
    """What `train` returns (rank 0 also has it on disk)."""

    out_dir: Path | None
    history: list[dict[str, Any]]
    best_val: float
    best_epoch: int
    test: dict[str, Any] | None = None
    test_last: dict[str, Any] | None = None
    model_state: dict[str, torch.Tensor] = field(default_factory=dict)
    aux_state: dict[str, torch.Tensor] = field(default_factory=dict)
    finished: bool = True


_PREPARED: dict[str, Any] = {}


def default_data_fn(data_cfg: Any, kind: str, split: str) -> Dataset:
    """Datasets from `tmkt.datasets`: paired (static, events, label), events (events, label) or
    static (pictures drawn from the whole static pool, label).

    The prepared sources/split of the last config are reused, so the train/val/test builders
    scan the data folders once per run.
    """
    from tmkt import datasets

    key = json.dumps(data_cfg.to_dict(), sort_keys=True, default=str)
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = datasets.prepare(data_cfg)
    prep = _PREPARED[key]
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if split == "train":  # a class without training recordings would be tested, never learned
        from tmkt.datasets.checks import check_train_classes

        check_train_classes(data_cfg.name, prep.classes, prep.split)
    if kind != "events":  # paired/static data: the pictures must be there
        from tmkt.datasets.checks import require_static

        require_static(prep.sources, "a method that trains on static pictures (all but dvs)")
    if kind == "paired":
        return datasets.PairedDataset(prep, split)
    if kind == "static":
        return datasets.StaticPoolDataset(prep, split)
    return datasets.EventDataset(prep, split)


def default_model_fn(model_cfg: Any, num_classes: int, in_shape: tuple[int, int, int]):
    """A network from `tmkt.models.build_model`."""
    from tmkt.models import build_model

    return build_model(
        model_cfg.name, num_classes, in_shape=tuple(in_shape), width=model_cfg.width,
        bn_mode=model_cfg.bn_mode, **model_cfg.neuron_kwargs(),
    )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def dataset_meta(ds: Dataset) -> tuple[list[str], tuple[int, int, int]]:
    """Class names and per-frame input shape (C, H, W) of a dataset."""
    classes = [str(c) for c in ds.classes]
    in_shape = getattr(ds, "in_shape", None)
    if in_shape is None:
        in_shape = tuple(ds[0][-2].shape[1:])
    return classes, tuple(int(v) for v in in_shape)


def lr_lambda(total_iters: int, warmup_iters: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine decay to `min_ratio`, per iteration."""

    def f(it: int) -> float:
        if it < warmup_iters:
            return (it + 1) / warmup_iters
        span = max(1, total_iters - warmup_iters)
        t = min(1.0, (it - warmup_iters) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def param_groups(module: nn.Module, weight_decay: float, filter_bias_and_bn: bool) -> list[dict]:
    """AdamW parameter groups: one with `weight_decay`, or (timm's rule, He et al.'s recipe)
    1-d parameters (BN weights, biases, the s_t logits) and biases in a group without decay."""
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not filter_bias_and_bn:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    no_decay = [p for n, p in params if p.ndim <= 1 or n.endswith(".bias")]
    decay = [p for n, p in params if not (p.ndim <= 1 or n.endswith(".bias"))]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def phased_lr_lambda(
    phase_iters: list[int], phase_warmup: list[int], min_ratio: float
) -> Callable[[int], float]:
    """`lr_lambda` restarted at every phase: each phase has its own warm-up and cosine."""
    fs = [lr_lambda(max(1, n), w, min_ratio) for n, w in zip(phase_iters, phase_warmup,
                                                              strict=True)]
    starts = [int(v) for v in np.cumsum([0, *phase_iters])[:-1]]

    def f(it: int) -> float:
        k = max(0, bisect.bisect_right(starts, it) - 1)  # the phase `it` is in (the last: on)
        return fs[k](it - starts[k])

    return f


def _to_batch(raw: Any, kind: str) -> Batch:
    if kind == "static":
        static, label = raw[-2], raw[-1]
        return Batch(label=torch.as_tensor(label), static=static)
    if kind == "paired":
        from tmkt.datasets import expand_like

        static, events, label = raw  # static may be compact [B,1,1,H,W] (compact_collate)
        return Batch(label=torch.as_tensor(label), events=events,
                     static=expand_like(static, events))
    events, label = raw[-2], raw[-1]
    return Batch(label=torch.as_tensor(label), events=events)


def _loader(
    ds: Dataset, batch: int, *, shuffle: bool, seed: int, epoch: int, info: D.DistInfo,
    workers: int, drop_last: bool, pin: bool, steps: int | None = None,
) -> DataLoader:
    """The training loader of one epoch: one pass over `ds` (DistributedSampler), or with
    `steps` exactly that many batches per rank (`CyclicSampler`, optim.steps_per_epoch)."""
    sampler: Sampler[int]
    if steps is not None:
        sampler = CyclicSampler(len(ds), steps * batch, seed=seed, epoch=epoch,
                                rank=info.rank, world=info.world_size)
    else:
        sampler = DistributedSampler(
            ds, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed
        )
        sampler.set_epoch(epoch)
    gen = torch.Generator()
    gen.manual_seed(seed * 100_003 + epoch)
    drop = drop_last and len(sampler) >= batch
    return DataLoader(
        ds, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=drop,
        generator=gen, pin_memory=pin, collate_fn=_collate(),
    )


def _eval_loader(ds: Dataset, batch: int, workers: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers,
                      collate_fn=_collate())


def _collate() -> Callable[[Any], Any]:
    """The datasets' zero-copy collate (whole batches from `__getitems__`; static pictures kept
    compact, `_to_batch` expands them); default otherwise."""
    from tmkt.datasets import compact_collate

    return compact_collate


class Trainer:
    """Holds the run's state; `fit()` trains to the configured number of epochs."""

    def __init__(
        self,
        cfg: Config,
        *,
        out_dir: str | Path | None = None,
        resume: str | Path | None = None,
        data_fn: DataFn | None = None,
        model_fn: ModelFn | None = None,
        overwrite: bool = False,
    ) -> None:
        cfg = resolve_method_data(cfg)  # sim_pretrain, joint: simulated static data
        self.cfg = cfg
        set_cpu_allocator(cfg.train.cpu_allocator)  # before the first large tensor
        self.data_fn = data_fn or default_data_fn
        self.model_fn = model_fn or default_model_fn
        info0 = D.env_dist_info()
        self.device = D.resolve_device(cfg.train.device, info0, setting="train.device")
        if cfg.train.amp != "none" and self.device.type != "cuda":
            raise ConfigError(f"train.amp={cfg.train.amp} needs a CUDA device")
        if out_dir is not None:  # every rank, before any rank can write (init_distributed)
            check_run_dir(out_dir, resume=resume, overwrite=overwrite)
        self.info = D.init_distributed(self.device)
        if cfg.optim.batch_size % self.info.world_size:
            raise ConfigError(
                f"optim.batch_size={cfg.optim.batch_size} must be divisible by the "
                f"{self.info.world_size} ranks"
            )
        self.batch = cfg.optim.batch_size // self.info.world_size
        self.out_dir = Path(out_dir) if out_dir is not None else None
        seed_everything(cfg.train.seed)

        self._train_ds: dict[str, Dataset] = {}
        # the event budget's subset follows the run's seed unless data.subset_seed fixes it
        self.data_cfg = cfg.data if cfg.data.subset_seed is not None else \
            dataclasses.replace(cfg.data, subset_seed=cfg.train.seed)
        val_ds = self.data_fn(self.data_cfg, "events", "val")
        self.classes, self.in_shape = dataset_meta(val_ds)
        self.val_ds = val_ds
        model = self.model_fn(cfg.model, len(self.classes), self.in_shape)
        self.raw_model = model.to(self.device)
        self.method: Method = build_method(cfg.method, self.raw_model, cfg.data.T, cfg.optim.epochs)
        self.phases = list(self.method.phases)  # epochs per phase (finetune: static, events)
        self.n_epochs = sum(self.phases)
        self.method.to(self.device)
        if cfg.train.compile:
            self.method.model = torch.compile(self.raw_model)
        self.ddp: nn.Module = self.method
        if self.info.enabled:
            self.ddp = DDP(
                self.method,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=not self.method.uses_all_params,
            )

        # steps per epoch (events and paired loaders index the same event samples)
        self.steps = [self._steps_in(e) for e in range(self.n_epochs)]
        self.total_iters = max(1, sum(self.steps))
        self.phase_starts = [int(v) for v in np.cumsum([0, *self.phases])[:-1]]
        phase_iters, phase_warm = [], []
        for start, n in zip(self.phase_starts, self.phases, strict=True):
            iters = sum(self.steps[start:start + n])
            phase_iters.append(iters)
            phase_warm.append(round(iters * min(cfg.optim.warmup_epochs, n) / max(n, 1)))
        self.optimizer = torch.optim.AdamW(
            param_groups(self.method, cfg.optim.weight_decay, cfg.optim.filter_bias_and_bn),
            lr=cfg.optim.resolved_lr(),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, phased_lr_lambda(phase_iters, phase_warm, cfg.optim.min_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler(enabled=cfg.train.amp == "fp16")
        self.epoch = 0
        self.iteration = 0
        self.best_val = -1.0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        history: list[dict[str, Any]] = []
        if resume is not None:
            history = self._restore(resume)
        if overwrite and self.info.is_main and self.out_dir is not None:
            clear_run(self.out_dir)  # only now: a run that fails to start keeps the old one
        self.logger = MetricsLogger(
            self.out_dir, enabled=self.info.is_main, tensorboard=cfg.train.tensorboard,
            history=history,
        )
        if self.info.is_main and self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out_dir / "config.yaml")
            split = getattr(val_ds, "data_split", None)
            if split is not None:  # the exact file lists of train/val/test, for reproduction
                from tmkt.datasets import save_split

                save_split(split, self.out_dir / "split.json")

    # --- data ----------------------------------------------------------------------------

    def train_dataset(self, kind: str) -> Dataset:
        """The training dataset of `kind` (built once)."""
        if kind not in self._train_ds:
            ds = self.data_fn(self.data_cfg, kind, "train")
            if hasattr(ds, "set_draw_seed"):  # pairing and augmentation follow train.seed
                ds.set_draw_seed(self.cfg.train.seed)
            spe = self.cfg.optim.steps_per_epoch
            if spe is not None and hasattr(ds, "set_epoch_length"):  # the static pool: an
                ds.set_epoch_length(spe * self.batch * self.info.world_size)  # epoch of fresh
            classes, _ = dataset_meta(ds)
            if classes != self.classes:
                raise ValueError(
                    f"train and val class lists differ: {classes[:5]}... vs {self.classes[:5]}..."
                )
            self._train_ds[kind] = ds
        return self._train_ds[kind]

    def _steps_in(self, epoch: int) -> int:
        n = self.cfg.optim.steps_per_epoch
        if n is None:  # one pass over the epoch's training data
            ds = self.train_dataset(self.method.data_kind(epoch))
            per_rank = math.ceil(len(ds) / self.info.world_size)
            drop = self.cfg.train.drop_last and per_rank >= self.batch
            n = per_rank // self.batch if drop else math.ceil(per_rank / self.batch)
        if self.cfg.train.max_steps_per_epoch is not None:
            n = min(n, self.cfg.train.max_steps_per_epoch)
        return n

    # --- checkpoints ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to resume bit for bit (tensors, numbers, strings only)."""
        return {
            "config": self.cfg.to_json(),
            "classes": list(self.classes),
            "in_shape": list(self.in_shape),
            "method": self.cfg.method.name,
            "model": self.raw_model.state_dict(),
            "aux": self.method.aux.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state({"method": self.method.generator}),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "best_val": self.best_val,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "history": self.logger.history,
            "world_size": self.info.world_size,
        }

    def _restore(self, resume: str | Path) -> list[dict[str, Any]]:
        path = resolve_checkpoint(resume)
        st = load_checkpoint(path, map_location=self.device)
        saved = json.loads(st["config"])
        if saved.get("method", {}).get("name") != self.cfg.method.name:
            raise ConfigError(
                f"{path}: checkpoint is for method {saved['method']['name']!r}, "
                f"config says {self.cfg.method.name!r}"
            )
        check_resume_config(st["config"], self.cfg, path)
        if list(st["classes"]) != self.classes or tuple(st["in_shape"]) != self.in_shape:
            raise ValueError(f"{path}: classes or input shape differ from the dataset")
        self.raw_model.load_state_dict(st["model"])
        self.method.aux.load_state_dict(st["aux"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])
        set_rng_state(st["rng"], {"method": self.method.generator})
        self.epoch, self.iteration = int(st["epoch"]), int(st["iteration"])
        self.best_val, self.best_epoch = float(st["best_val"]), int(st["best_epoch"])
        self.best_val_loss = float(st.get("best_val_loss", math.inf))
        return list(st["history"])

    def _save(self, name: str) -> Path | None:
        if not self.info.is_main or self.out_dir is None:
            return None
        return save_checkpoint(self.state(), self.out_dir / name)

    # --- training ------------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch; returns mean loss terms, lr and throughput."""
        cfg = self.cfg
        self.method.begin_epoch(epoch)
        if epoch in self.phase_starts[1:]:  # a new phase: a fresh optimiser (its own schedule)
            self.optimizer.state.clear()
        self.method.generator.manual_seed(
            (cfg.train.seed * 1_000_003 + epoch * 7919 + self.info.rank) % 2**63
        )
        kind = self.method.data_kind(epoch)
        ds = self.train_dataset(kind)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        loader = _loader(
            ds, self.batch, shuffle=True, seed=cfg.train.seed, epoch=epoch, info=self.info,
            workers=cfg.train.num_workers, drop_last=cfg.train.drop_last,
            pin=self.device.type == "cuda",
            steps=self.steps[epoch] if cfg.optim.steps_per_epoch is not None else None,
        )
        steps = self.steps[epoch]
        self.ddp.train()
        sums: dict[str, torch.Tensor] = {}  # on the terms' devices: no per-term host sync
        seen = 0
        t0 = time.perf_counter()
        bar = Progress(loader, steps, f"epoch {epoch + 1}/{self.n_epochs}",
                       enabled=cfg.train.progress and self.info.is_main)
        for step, raw in enumerate(bar):
            if step >= steps:
                break
            batch = _to_batch(raw, kind).to(self.device)
            progress = self.iteration / self.total_iters
            with autocast_context(self.device, cfg.train.amp):
                loss, terms = self.ddp(batch, progress)
            self._check_finite(loss, terms, epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.optim.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.method.parameters(), cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.iteration += 1
            b = batch.size
            seen += b
            for k, v in terms.items():
                v = v.detach().double() * b
                sums[k] = sums[k] + v if k in sums else v
            if bar.enabled and (step % 10 == 0 or step == steps - 1):
                sps = seen * self.info.world_size / max(time.perf_counter() - t0, 1e-9)
                bar.update(float(terms["loss"]), float(terms.get("acc", float("nan"))), sps)
        bar.close()
        dt = time.perf_counter() - t0
        row = {f"train_{k}": float(v) / max(seen, 1) for k, v in sums.items()}
        row["samples_per_s"] = seen * self.info.world_size / max(dt, 1e-9)
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        return row

    def _check_finite(self, loss: torch.Tensor, terms: dict, epoch: int, step: int) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).item() else 1.0])
        if self.info.enabled:
            bad = D.all_reduce_mean(bad.to(self.device), self.info).cpu()
        if float(bad) == 0.0:
            return
        last = self.out_dir / "last.pt" if self.out_dir is not None else None
        kept = str(last) if last is not None and last.exists() else "none (first epoch)"
        shown = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
        raise TrainingDiverged(
            f"non-finite loss at epoch {epoch + 1}, step {step} (iteration {self.iteration}): "
            f"{shown}; training stopped, last good checkpoint kept: {kept}"
        )

    def validate(self) -> dict[str, Any] | None:
        """Validation metrics on rank 0 (None on other ranks)."""
        if not self.info.is_main:
            return None
        bs = self.cfg.train.eval_batch_size or self.cfg.optim.batch_size
        return evaluate(
            self.raw_model, _eval_loader(self.val_ds, bs, self.cfg.train.num_workers),
            self.device, classes=self.classes, amp=self.cfg.train.amp,
            max_batches=self.cfg.train.max_eval_batches,
        )

    def fit(self, stop_after_epoch: int | None = None) -> RunResult:
        """Train every phase's epochs (or stop after epoch `stop_after_epoch`, as if killed)."""
        cfg = self.cfg
        while self.epoch < self.n_epochs:
            e = self.epoch
            row: dict[str, Any] = {"epoch": e + 1}
            row.update(self.train_epoch(e))
            D.broadcast_buffers(self.method, self.info)  # BN running stats: rank 0's everywhere
            row["progress"] = self.iteration / self.total_iters
            self.epoch = e + 1
            last_epoch = self.epoch == self.n_epochs
            if self.epoch % cfg.train.eval_every == 0 or last_epoch:
                val = self.validate()
                top1 = D.broadcast_float(val["top1"] if val else 0.0, self.info, self.device)
                loss = D.broadcast_float(val["loss"] if val else math.inf, self.info, self.device)
                if val is not None:
                    row.update(val_top1=val["top1"], val_top5=val["top5"], val_loss=val["loss"])
                improved = is_better(cfg.train.select, top1, loss, self.best_val,
                                     self.best_val_loss)
                if improved:
                    self.best_val, self.best_val_loss, self.best_epoch = top1, loss, self.epoch
            else:
                improved = False
            self.logger.log_epoch(row)
            if improved:
                self._save("best.pt")
            self._save("last.pt")
            D.barrier(self.info)
            if stop_after_epoch is not None and self.epoch >= stop_after_epoch and not last_epoch:
                self.logger.close()
                return self._result(finished=False)
        result = self._finish()
        self.logger.close()
        return result

    def _result(self, finished: bool, **kw: Any) -> RunResult:
        return RunResult(
            out_dir=self.out_dir, history=list(self.logger.history), best_val=self.best_val,
            best_epoch=self.best_epoch,
            model_state={k: v.detach().clone() for k, v in self.raw_model.state_dict().items()},
            aux_state={k: v.detach().clone() for k, v in self.method.aux.state_dict().items()},
            finished=finished, **kw,
        )

    def _finish(self) -> RunResult:
        test = test_last = None
        if self.info.is_main and not self.cfg.train.test:  # a tuning run: the test split unread
            if self.out_dir is not None:
                self._write_results(None, None)
        elif self.info.is_main:
            test_ds = self.data_fn(self.data_cfg, "events", "test")
            classes, _ = dataset_meta(test_ds)
            if classes != self.classes:
                raise ValueError("test split classes differ from the training classes")
            bs = self.cfg.train.eval_batch_size or self.cfg.optim.batch_size
            loader = _eval_loader(test_ds, bs, self.cfg.train.num_workers)
            kw = {"classes": self.classes, "amp": self.cfg.train.amp, "firing_rates": True}
            test_last = evaluate(self.raw_model, loader, self.device, **kw)
            best_model = self.raw_model
            best_path = self.out_dir / "best.pt" if self.out_dir is not None else None
            if best_path is not None and best_path.exists():
                best_model = copy.deepcopy(self.raw_model)
                best_model.load_state_dict(load_checkpoint(best_path, self.device)["model"])
            from tmkt.deploy.energy import with_energy  # + operations/energy, same pass

            test = with_energy(best_model, lambda: evaluate(best_model, loader, self.device, **kw))
            if self.out_dir is not None:
                self._write_results(test, test_last)
        D.barrier(self.info)
        return self._result(finished=True, test=test, test_last=test_last)

    def _write_results(self, test: dict[str, Any] | None, test_last: dict[str, Any] | None) -> None:
        assert self.out_dir is not None
        if self.cfg.train.plots:
            sched = self.method.schedule_value if self.method.schedule_value(0.5) is not None \
                else None
            label = "P (replacement)" if self.cfg.method.name == "sliding" else "r_m"
            save_plots(self.logger.history, self.out_dir, sched, label)
        results = {
            "method": self.cfg.method.name,
            "seed": self.cfg.train.seed,
            "dataset": self.cfg.data.name,
            "model": self.cfg.model.name,
            "epochs": self.n_epochs,
            "best_epoch": self.best_epoch,
            "best_val_top1": self.best_val,
            "best_val_loss": self.best_val_loss,
            "select": self.cfg.train.select,
            "val_last": _last_val(self.logger.history),
            "test": test,
            "test_last": test_last,
            "selection": f"validation split, train.select={self.cfg.train.select} "
                         "(test split never used for selection)",
        }
        concat = getattr(self.method, "concat_streams", None)
        if concat is not None:  # what method.two_stream (e.g. auto) resolved to on this device
            results["two_stream"] = "one batch, BN per stream" if concat(self.device) \
                else "two passes"
        tmp = self.out_dir / "results.json.tmp"
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(self.out_dir / "results.json")


def is_better(select: str, top1: float, loss: float, best_top1: float, best_loss: float) -> bool:
    """Whether a validation result beats the best so far under `train.select`: "top1" (a
    strictly higher top-1: the first epoch of a tie is kept), "top1_then_loss" (ties in top-1,
    common on small validation splits, go to the lower validation loss) or "loss"."""
    if select == "loss":
        return loss < best_loss
    if select == "top1":
        return top1 > best_top1
    return top1 > best_top1 or (top1 == best_top1 and loss < best_loss)


def _last_val(history: list[dict[str, Any]]) -> dict[str, float] | None:
    """Validation top-1 and loss of the last epoch that was evaluated (None if none was)."""
    rows = [r for r in history if "val_top1" in r]
    if not rows:
        return None
    return {"epoch": rows[-1].get("epoch"), "top1": rows[-1]["val_top1"],
            "loss": rows[-1].get("val_loss")}


def run_dir_for(cfg: Config) -> Path:
    """Default run folder: `<train.out_dir>/<run_name or method_s<seed>>`."""
    name = cfg.train.run_name or f"{cfg.method.name}_s{cfg.train.seed}"
    return Path(cfg.train.out_dir) / name


def train(
    cfg: Config,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    stop_after_epoch: int | None = None,
    data_fn: DataFn | None = None,
    model_fn: ModelFn | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Train `cfg` into `out_dir` (default `run_dir_for(cfg)`); see `Trainer`.

    `out_dir` must be new or empty, or hold the run being resumed; `overwrite` replaces a
    previous run there (`tmkt.train.rundir`)."""
    out = Path(out_dir) if out_dir is not None else run_dir_for(cfg)
    trainer = Trainer(cfg, out_dir=out, resume=resume, data_fn=data_fn, model_fn=model_fn,
                      overwrite=overwrite)
    try:
        return trainer.fit(stop_after_epoch=stop_after_epoch)
    finally:
        trainer.logger.close()
