"""Run configuration: nested dataclasses, YAML loading, typed dotted overrides, validation.

`Config.from_dict` rejects unknown keys with the list of valid ones; `apply_overrides(cfg,
["optim.lr=0.01", "data.size=[48,48]"])` types each value by the target field's annotation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tmkt.datasets.config import DataConfig

AMP_MODES = ("none", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
TWO_STREAM_MODES = ("auto", "separate", "concat")
MRP_LOSSES = ("mse", "bce")
MRP_OUTPUTS = ("linear", "sigmoid")
SCHEDULES = ("power", "constant", "linear")
BN_STATS = ("event", "both")
NO_CKA_STEP_WEIGHTS = ("initial", "none")
FINETUNE_PHASES = ("separate", "shared")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the key and valid choices."""


@dataclass
class ModelConfig:
    """Network choice and LIF neuron settings (SPEC §7 defaults)."""

    name: str = "cnn_small"
    width: float = 1.0
    tau: float = 2.0
    v_threshold: float = 0.5
    reset: str = "hard"
    detach_reset: bool = True
    surrogate: str = "triangle"
    alpha: float = 2.0
    bn_mode: str = "fold"  # SeqBatchNorm2d: fold T into the batch (tdBN-like) | per_step
    # [ours] speed/memory only (same results up to rounding): per-time-step convolutions on CPU
    # for frames >= 24x24 unless train.cpu_allocator is cache (auto | fold | step); what the
    # fused BN+LIF keeps for backward (membrane: faster; input: leaner, recomputes BN and the
    # LIF loop)
    conv_time: str = "auto"
    bn_lif_saves: str = "membrane"
    # [ours] CPU convolution algorithm: auto (NNPACK's Winograd for wide 3x3 convolutions, about
    # 1e-5 relative rounding; torch's default elsewhere) | default | winograd (tmkt.snn.conv)
    conv_algo: str = "auto"

    def neuron_kwargs(self) -> dict[str, Any]:
        """Keyword arguments forwarded to `build_model` for the neurons."""
        return {
            "tau": self.tau,
            "v_threshold": self.v_threshold,
            "reset": self.reset,
            "detach_reset": self.detach_reset,
            "surrogate": self.surrogate,
            "alpha": self.alpha,
            "conv_time": self.conv_time,
            "bn_lif_saves": self.bn_lif_saves,
            "conv_algo": self.conv_algo,
        }


@dataclass
class MethodConfig:
    """Training method and its loss weights; [ours] choices are marked in the field comments."""

    name: str = "tmkt"
    beta: float = 0.5  # weight of the CKA domain loss [He, paper]
    lambda_mag: float = 0.1  # [ours]
    lambda_mrp: float = 0.1  # [ours]
    mrp_loss: str = "mse"  # [ours] mse | bce
    # [ours] MRP head output for the mse loss: "linear" regresses rho directly (clipped to [0,1]
    # for reporting); "sigmoid" squashes first, and saturates at 0 while the schedule's r_m is ~0
    # early in training (its gradient vanishes; seen on N-MNIST). bce always uses the sigmoid.
    mrp_output: str = "linear"
    tet_lambda: float = 1e-3  # [He]
    tet_phi: float = 0.5  # [He] (= firing threshold)
    schedule: str = "power"  # r_m (tmkt) or P (sliding) over progress [ours: power k=3 as He]
    schedule_k: float = 3.0
    schedule_value: float = 0.5  # r_m for schedule "constant"
    cka_init: float = 1.0  # c_t initial value, s_t = sigmoid(c_t) [He]
    detach_step_weights: bool = False  # [ours] weights (1 - s_t) carry gradient as in He's code
    # both streams through the shared SNN, BN statistics per stream [He]: separate passes, or
    # concat (one interleaved batch); auto [ours]: concat on CUDA when every BN can split, else
    # separate (measured: docs/benchmarks.md, Two-stream)
    two_stream: str = "auto"
    # [ours] which stream updates the BN running statistics that evaluation (event input) uses:
    # "event" (the pure event stream only; chosen on validation data, docs/results.md) or
    # "both" (the mixed stream and then the event stream, as He et al.'s two passes do)
    bn_stats: str = "event"
    # tmkt_no_cka: the event stream's per-step TET weights (1 - s_t) without a CKA loss to
    # learn s_t: "initial" = fixed at 1 - sigmoid(cka_init) (tmkt's value at initialisation:
    # one factor), "none" = unweighted (the old ablation, which also changed the loss scale)
    no_cka_step_weights: str = "initial"
    # finetune: "separate" = a static phase of finetune_static_epochs epochs (None: as many as
    # optim.epochs) drawing from the whole static pool, then optim.epochs event epochs (as
    # dvs), each phase with a fresh optimiser and its own warm-up + cosine; "shared" = the old
    # recipe: the static phase takes finetune_static_epochs (None: half) of optim.epochs with
    # the pictures paired to the recordings, one optimiser and schedule across both phases
    finetune_phases: str = "separate"
    finetune_static_epochs: int | None = None


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, stepped per iteration (He et al.'s recipe)."""

    lr: float | None = None  # absolute lr; None: lr_per_1024 * batch_size / 1024
    lr_per_1024: float = 5e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 5.0
    epochs: int = 300
    batch_size: int = 120  # global batch (split across DDP ranks)
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    # timm's rule: no weight decay on 1-d parameters (BN weights, biases, the s_t logits) and
    # biases; He et al.'s recipe (the reference configs set it), off = decay everything
    filter_bias_and_bn: bool = False
    # [ours] optimiser steps per epoch (per phase epoch): None = one pass over the training
    # data; N = every epoch is N steps drawn from seeded permutations laid end to end, so a run
    # takes epochs x N steps whatever the number of recordings (an event budget of 50 must not
    # mean 16 steps)
    steps_per_epoch: int | None = None

    def resolved_lr(self) -> float:
        """The learning rate actually used."""
        return self.lr if self.lr is not None else self.lr_per_1024 * self.batch_size / 1024


SELECT_RULES = ("top1_then_loss", "top1", "loss")
REPORTS = ("test", "val")  # experiment.report


@dataclass
class TrainConfig:
    """Run settings: seed, device, precision, output and quick-run limits."""

    seed: int = 42
    device: str = "auto"
    num_workers: int = 0
    amp: str = "none"
    compile: bool = False
    out_dir: str = "runs"
    run_name: str | None = None  # None: <method>_s<seed>
    eval_every: int = 1
    max_steps_per_epoch: int | None = None
    max_eval_batches: int | None = None
    eval_batch_size: int | None = None  # None: the training batch size
    drop_last: bool = True
    progress: bool = True
    tensorboard: bool = True
    plots: bool = True
    # evaluate the test split at the end; off for tuning sweeps, whose runs then never read it
    test: bool = True
    # [ours] which epoch is "best" (best.pt): top1_then_loss = highest validation top-1, ties
    # (common on small validation splits) to the lower validation loss; top1 = the first epoch
    # with the highest top-1; loss = the lowest validation loss
    select: str = "top1_then_loss"
    # [ours] host allocator: cache = keep freed blocks in the process (glibc mallopt; no page
    # faults re-touching big activations each step); system = the C library's default
    cpu_allocator: str = "cache"


@dataclass
class ExperimentConfig:
    """Methods x seeds grid for `tmkt experiment`; `quick` holds dotted overrides for --quick."""

    name: str = "experiment"
    # method names, or names of `variants` (dotted override sets, e.g. a tuning sweep's points)
    methods: list[str] = field(default_factory=lambda: ["tmkt", "dvs"])
    seeds: list[int] = field(default_factory=lambda: [42])
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "test": test top-1 of the validation-selected and last weights; "val": validation only
    # (for sweeps: runs are trained with train.test off and the test split is never read)
    report: str = "test"
    split_per_seed: bool = False  # data.seed = the run's seed: each seed draws its own val split
    quick: dict[str, Any] = field(
        default_factory=lambda: {"optim.epochs": 2, "train.max_steps_per_epoch": 4}
    )
    # event budgets: each entry x seed runs at data.max_per_class = every budget here (null:
    # all recordings); empty = no budget axis (data.max_per_class as configured)
    budgets: list[int | None] = field(default_factory=list)
    # entry -> the budgets it runs at (default: all of `budgets`), e.g. ablations at [10]
    budget_methods: dict[str, list[int | None]] = field(default_factory=dict)


@dataclass
class Config:
    """The whole run configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Config:
        """Build and validate from a nested mapping; unknown keys raise ConfigError."""
        cfg = _build(cls, d or {}, "")
        validate(cfg)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, str paths): safe for YAML/JSON and checkpoints."""
        return _plain(self)

    def to_json(self) -> str:
        """The config as a JSON string (stored in checkpoints)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> Config:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(s))


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load YAML (or defaults when `path` is None), then apply dotted `key=value` overrides."""
    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        d = loaded or {}
    return apply_overrides(Config.from_dict(d), overrides or [])


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def apply_overrides(cfg: Config, overrides: list[str] | dict[str, Any]) -> Config:
    """A new Config with dotted overrides applied (`"a.b=v"` strings or a {"a.b": v} dict).

    String values are parsed as YAML scalars/lists and coerced to the field's type.
    """
    d = cfg.to_dict()
    items = overrides.items() if isinstance(overrides, dict) else map(_split_kv, overrides)
    for key, raw in items:
        parts = key.split(".")
        tp, target = _field_type(Config, parts, key), d
        for part in parts[:-1]:
            target = target[part]
        value = _parse(raw) if isinstance(raw, str) else raw
        target[parts[-1]] = _coerce(value, tp, key)
    return Config.from_dict(d)


def resolve_method_data(cfg: Config) -> Config:
    """`cfg` with the data settings its method is defined by (`sim_pretrain` and `joint`
    train on simulated recordings: data.static_encoding sim); what a run saves and compares."""
    from tmkt.train.methods import METHODS

    fixed = getattr(METHODS.get(cfg.method.name), "static_encoding", None)
    if fixed is None or cfg.data.static_encoding == fixed:
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, static_encoding=fixed))


def validate(cfg: Config) -> None:
    """Check value ranges and choices; ConfigError names the key."""
    _choice("train.amp", cfg.train.amp, AMP_MODES)
    _choice("train.device", cfg.train.device, DEVICES)
    _choice("method.two_stream", cfg.method.two_stream, TWO_STREAM_MODES)
    _choice("method.mrp_loss", cfg.method.mrp_loss, MRP_LOSSES)
    _choice("method.mrp_output", cfg.method.mrp_output, MRP_OUTPUTS)
    _choice("method.schedule", cfg.method.schedule, SCHEDULES)
    _choice("method.bn_stats", cfg.method.bn_stats, BN_STATS)
    _choice("method.no_cka_step_weights", cfg.method.no_cka_step_weights, NO_CKA_STEP_WEIGHTS)
    _choice("method.finetune_phases", cfg.method.finetune_phases, FINETUNE_PHASES)
    from tmkt.train.methods import METHODS  # late: methods import this module

    _choice("method.name", cfg.method.name, tuple(METHODS.names()))
    variants = cfg.experiment.variants
    for experiment_method in cfg.experiment.methods:
        if experiment_method not in variants:
            _choice("experiment.methods", experiment_method,
                    tuple(METHODS.names()) + tuple(variants))
    for vname, overrides in variants.items():
        if vname in METHODS.names():
            raise ConfigError(f"experiment.variants: {vname!r} is a method name; choose another")
        if not isinstance(overrides, dict):
            raise ConfigError(f"experiment.variants.{vname} must map dotted keys to values")
        for key, value in overrides.items():
            where = f"experiment.variants.{vname}: {key}"
            if not isinstance(key, str) or key.split(".")[0] == "experiment":
                raise ConfigError(f"{where}: a variant sets data/model/method/optim/train keys")
            _coerce(value, _field_type(Config, key.split("."), where), where)
        name = overrides.get("method.name", cfg.method.name)
        _choice(f"experiment.variants.{vname}: method.name", name, tuple(METHODS.names()))
    _choice("experiment.report", cfg.experiment.report, REPORTS)
    _choice("train.select", cfg.train.select, SELECT_RULES)
    from tmkt.allocator import CPU_ALLOCATORS

    _choice("train.cpu_allocator", cfg.train.cpu_allocator, CPU_ALLOCATORS)
    from tmkt.snn.conv import CONV_ALGOS
    from tmkt.snn.neuron import BN_LIF_SAVES, CONV_TIME_MODES

    _choice("model.conv_time", cfg.model.conv_time, tuple(CONV_TIME_MODES))
    _choice("model.bn_lif_saves", cfg.model.bn_lif_saves, tuple(BN_LIF_SAVES))
    _choice("model.conv_algo", cfg.model.conv_algo, tuple(CONV_ALGOS))
    positive = {
        "optim.epochs": cfg.optim.epochs,
        "optim.batch_size": cfg.optim.batch_size,
        "train.eval_every": cfg.train.eval_every,
    }
    for key, v in positive.items():
        if v < 1:
            raise ConfigError(f"{key} must be >= 1, got {v}")
    if cfg.optim.warmup_epochs < 0 or cfg.optim.weight_decay < 0:
        raise ConfigError("optim.warmup_epochs and optim.weight_decay must be >= 0")
    if cfg.optim.lr is not None and cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    if cfg.train.max_steps_per_epoch is not None and cfg.train.max_steps_per_epoch < 1:
        raise ConfigError("train.max_steps_per_epoch must be >= 1 or null")
    if cfg.train.num_workers < 0:
        raise ConfigError("train.num_workers must be >= 0")
    spe = cfg.optim.steps_per_epoch
    if spe is not None and (isinstance(spe, bool) or spe < 1):
        raise ConfigError(f"optim.steps_per_epoch must be >= 1 or null, got {spe}")
    for b in cfg.experiment.budgets:
        if b is not None and (isinstance(b, bool) or b < 1):
            raise ConfigError(
                f"experiment.budgets: a budget is recordings per class >= 1 (or null: all), "
                f"got {b}"
            )
    for entry, bs in cfg.experiment.budget_methods.items():
        if entry not in cfg.experiment.methods:
            raise ConfigError(
                f"experiment.budget_methods: {entry!r} is not in experiment.methods"
            )
        extra = [b for b in bs if b not in cfg.experiment.budgets]
        if extra:
            raise ConfigError(
                f"experiment.budget_methods.{entry}: budgets {extra} are not in "
                f"experiment.budgets {cfg.experiment.budgets}"
            )
    fse = cfg.method.finetune_static_epochs
    if cfg.method.finetune_phases == "shared":
        if fse is not None and not 0 <= fse <= cfg.optim.epochs:
            raise ConfigError(
                f"method.finetune_static_epochs must be in 0..optim.epochs={cfg.optim.epochs} "
                f"with finetune_phases: shared, got {fse}"
            )
    elif fse is not None and fse < 0:
        raise ConfigError(f"method.finetune_static_epochs must be >= 0, got {fse}")
    if not cfg.experiment.seeds:
        raise ConfigError("experiment.seeds must list at least one seed")
    check_ranges(cfg)


# [key, lowest, highest, lowest allowed itself]: values outside break training silently (a
# negative grad_clip flips the gradient, min_lr_ratio < 0 makes the lr negative, ...)
RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("optim.lr_per_1024", 0.0, math.inf, False),
    ("optim.grad_clip", 0.0, math.inf, False),
    ("optim.min_lr_ratio", 0.0, 1.0, True),
    ("method.beta", 0.0, math.inf, True),
    ("method.lambda_mag", 0.0, math.inf, True),
    ("method.lambda_mrp", 0.0, math.inf, True),
    ("method.tet_lambda", 0.0, 1.0, True),
    ("method.schedule_k", 0.0, math.inf, False),
    ("method.schedule_value", 0.0, 1.0, True),
    ("model.width", 0.0, math.inf, False),
    ("model.tau", 1.0, math.inf, True),
    ("model.v_threshold", 0.0, math.inf, False),
    ("model.alpha", 0.0, math.inf, False),
)


def check_ranges(cfg: Config) -> None:
    """Every number finite, and each `RANGES` key within its range; ConfigError names the key."""
    for section in ("data", "model", "method", "optim", "train"):
        for f in dataclasses.fields(getattr(cfg, section)):
            v = getattr(getattr(cfg, section), f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{section}.{f.name} must be a finite number, got {v}")
    for key, lo, hi, lo_ok in RANGES:
        section, name = key.split(".")
        v = getattr(getattr(cfg, section), name)
        if v is None:
            continue
        if not ((v >= lo if lo_ok else v > lo) and v <= hi):
            low = f"{'>=' if lo_ok else '>'} {lo:g}"
            want = low if hi == math.inf else f"{low} and <= {hi:g}"
            null = " (or null: no clipping)" if key == "optim.grad_clip" else ""
            raise ConfigError(f"{key} must be {want}{null}, got {v}")


# --- helpers -------------------------------------------------------------------------------


def _choice(key: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{key} must be one of: {', '.join(valid)}; got {value!r}")


def _split_kv(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, value = item.split("=", 1)
    return key.strip(), value


def _parse(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _section_fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field_type(cls: type, parts: list[str], key: str) -> Any:
    tp: Any = cls
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(tp):
            where = ".".join(parts[:i])
            raise ConfigError(f"{where} is not a section; cannot set {key!r}")
        hints = _section_fields(tp)
        if part not in hints:
            where = ".".join(parts[:i]) or "top level"
            raise ConfigError(
                f"unknown config key {key!r}; valid keys in {where}: {', '.join(hints)}"
            )
        tp = hints[part]
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{key!r} is a section; set one of its keys, e.g. {key}.<name>=...")
    return tp


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"section {prefix or 'top level'} must be a mapping, got {d!r}")
    hints = _section_fields(cls)
    unknown = sorted(set(d) - set(hints))
    if unknown:
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys in {where}: "
            f"{', '.join(hints)}"
        )
    kwargs = {}
    for name, value in d.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {e}") from None


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert `value` to annotation `tp`; ConfigError naming `key` on mismatch."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key} may not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: bad value {value!r}")
    if value is None:
        raise ConfigError(f"{key} may not be null")
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and _is_int(value) and args and all(a is int for a in args):
            value = [value] * len(args)  # data.size=48 means 48x48 (docs/datasets.md)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key} must have {len(args)} items, got {value!r}")
            return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, key) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "5e-3" as a string
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return str(value)
        raise ConfigError(f"{key} must be a path, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
