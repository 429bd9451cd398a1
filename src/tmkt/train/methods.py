"""Training methods (SPEC §5-§6): each turns a batch into `(loss, terms)` for the trainer.

A method is an `nn.Module` that owns the shared SNN (`.model`) and any method-only learnable parts
(`.aux`: DomainLoss s_t, MAG and MRP heads), so one optimizer and one DDP wrapper cover all of it.
Batches arrive loader-layout `[B, T, C, H, W]`; the method mixes there and does the one transpose
to the networks' time-first layout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tmkt.datasets.collate import expanded_over_time
from tmkt.registry import Registry
from tmkt.snn.layers import SeqBatchNorm2d
from tmkt.snn.stream_bn import (
    deinterleave,
    frozen_streams,
    interleave,
    keep_running_stats,
    stream_batch_norm,
)
from tmkt.train.config import MethodConfig
from tmkt.transfer import losses, tsm
from tmkt.transfer.heads import MAGHead, MRPHead
from tmkt.transfer.schedules import build_schedule

METHODS: Registry[Callable[..., Method]] = Registry("method")

Terms = dict[str, torch.Tensor]


@dataclass
class Batch:
    """One training batch in loader layout: static/events `[B,T,C,H,W]` (either may be None)."""

    label: torch.Tensor
    events: torch.Tensor | None = None
    static: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor to `device` (non-blocking). A batch expanded over dims 1 and 2
        (stride 0: a static picture over T and both channels) moves one frame per sample and
        is expanded again there."""

        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            if expanded_over_time(t):
                return t[:, :1, :1].to(device, non_blocking=True).expand(t.shape)
            return t.to(device, non_blocking=True)

        return Batch(label=mv(self.label), events=mv(self.events), static=mv(self.static))

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.label.shape[0])


def time_first(x: torch.Tensor) -> torch.Tensor:
    """`[B,T,...]` -> `[T,B,...]` (contiguous)."""
    return x.transpose(0, 1).contiguous()


def _at_least_float(x: torch.Tensor) -> torch.Tensor:
    """float32 for half/bf16 results of autocast (losses in full precision), float64 kept."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Top-1 accuracy of time-averaged logits `[T,B,K]` (a detached 0-d tensor)."""
    return (logits.detach().mean(0).argmax(-1) == y).float().mean()


class Method(nn.Module):
    """Base class: `forward(batch, progress) -> (loss, terms)`; `loss` is an alias.

    `data_kind(epoch)` says which training data the trainer must load: "events" (event frames
    only), "paired" (static + events) or "static" (pictures drawn from the whole static pool).
    `phases` lists the epochs of each training phase: the trainer runs `sum(phases)` epochs and
    starts every phase with a fresh optimiser and its own warm-up + cosine. `uses_all_params`
    tells DDP whether every parameter receives a gradient each step.
    """

    name = "base"
    uses_all_params = True
    static_encoding: str | None = None  # an encoding the method is defined by (None: any)

    def __init__(self, model: nn.Module, cfg: MethodConfig, T: int, epochs: int = 1) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.T = T
        self.epochs = epochs
        self.aux = nn.ModuleDict()
        self.generator = torch.Generator()  # CPU; seeded by the trainer (and checkpointed)
        self.epoch = 0

    def data_kind(self, epoch: int) -> str:
        """"paired", "events" or "static": what the training loader must yield in `epoch`."""
        return "paired"

    @property
    def phases(self) -> list[int]:
        """Epochs of each phase (one phase of `epochs` unless a method has more)."""
        return [self.epochs]

    def begin_epoch(self, epoch: int) -> None:
        """Called by the trainer before each epoch."""
        self.epoch = epoch

    def schedule_value(self, progress: float) -> float | None:
        """The scheduled mix quantity (r_m or P) at `progress`, if the method has one."""
        return None

    def tet(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None):
        """TET loss with the configured lambda and phi."""
        return losses.tet_loss(
            _at_least_float(logits), y, lam=self.cfg.tet_lambda, phi=self.cfg.tet_phi,
            step_weights=w,
        )

    def loss(self, batch: Batch, progress: float) -> tuple[torch.Tensor, Terms]:
        """Total loss and a dict of detached terms (for logging)."""
        return self(batch, progress)

    def forward(self, batch: Batch, progress: float) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError


@METHODS.register("dvs")
class DVSMethod(Method):
    """Event data only, single stream, event head, TET loss."""

    name = "dvs"
    uses_all_params = False  # the source head is unused

    def data_kind(self, epoch: int) -> str:
        return "events"

    def forward(self, batch: Batch, progress: float) -> tuple[torch.Tensor, Terms]:
        if batch.events is None:
            raise ValueError("method 'dvs' needs event frames in the batch")
        out = self.model(time_first(batch.events))
        loss = self.tet(out.logits_evt, batch.label)
        return loss, {"loss": loss.detach(), "l_evt": loss.detach(),
                      "acc": accuracy(out.logits_evt, batch.label)}


@METHODS.register("finetune")
class FinetuneMethod(Method):
    """Two phases on the event head (one classifier throughout; the test uses it): static
    sequences, then events.

    `finetune_phases: separate` (default): `finetune_static_epochs` (None: `epochs`) epochs of
    pictures drawn from the whole static pool, then `epochs` event epochs, as `dvs` gets; each
    phase has a fresh optimiser and its own warm-up + cosine. `shared` (the old recipe): the
    static phase takes `finetune_static_epochs` (None: half) of `epochs`, with the pictures
    paired to the recordings, under one optimiser and schedule.
    """

    name = "finetune"
    uses_all_params = False

    @property
    def separate(self) -> bool:
        """Whether the phases are separate (own optimiser and schedule, full event epochs)."""
        return self.cfg.finetune_phases == "separate"

    @property
    def static_epochs(self) -> int:
        """Epochs of the static phase."""
        n = self.cfg.finetune_static_epochs
        if n is not None:
            return n
        return self.epochs if self.separate else self.epochs // 2

    @property
    def phases(self) -> list[int]:
        if not self.separate:
            return [self.epochs]
        return [n for n in (self.static_epochs, self.epochs) if n > 0]

    def data_kind(self, epoch: int) -> str:
        if epoch >= self.static_epochs:
            return "events"
        return "static" if self.separate else "paired"

    def forward(self, batch: Batch, progress: float) -> tuple[torch.Tensor, Terms]:
        static_phase = self.epoch < self.static_epochs
        x = batch.static if static_phase else batch.events
        if x is None:
            raise ValueError(
                f"method 'finetune' needs {'static' if static_phase else 'event'} frames"
            )
        out = self.model(time_first(x))
        loss = self.tet(out.logits_evt, batch.label)
        key = "l_static" if static_phase else "l_evt"
        return loss, {"loss": loss.detach(), key: loss.detach(),
                      "acc": accuracy(out.logits_evt, batch.label)}


@METHODS.register("sim_pretrain")
class SimPretrainMethod(FinetuneMethod):
    """`finetune` on simulated recordings of the static set (`data.static_encoding: sim`, set by
    `resolve_method_data`): a simulator user's pre-train-then-fine-tune."""

    name = "sim_pretrain"
    static_encoding = "sim"


@METHODS.register("joint")
class JointMethod(Method):
    """One stream, event head, TET loss: each batch holds the B real recordings and their B
    class-paired simulated recordings (`data.static_encoding: sim`, `resolve_method_data`),
    normalised together; `dvs` plus simulated data, nothing else."""

    name = "joint"
    uses_all_params = False  # the source head is unused
    static_encoding = "sim"

    def forward(self, batch: Batch, progress: float) -> tuple[torch.Tensor, Terms]:
        if batch.static is None or batch.events is None:
            raise ValueError("method 'joint' needs paired simulated and real event frames")
        sim = batch.static
        real = batch.events.to(sim.dtype) if batch.events.dtype != sim.dtype else batch.events
        x = torch.cat([real, sim.expand(real.shape)], 0)
        y = torch.cat([batch.label, batch.label], 0)
        out = self.model(time_first(x))
        loss = self.tet(out.logits_evt, y)
        B = batch.size
        return loss, {"loss": loss.detach(), "l_evt": loss.detach(),
                      "acc": accuracy(out.logits_evt[:, :B], batch.label),
                      "acc_sim": accuracy(out.logits_evt[:, B:], batch.label)}


class TwoStreamMethod(Method):
    """Source (mixed) stream + pure event stream through one shared SNN (He et al., TMKT).

    L = L_src + L_evt + beta L_dom [+ lambda_mag L_MAG + lambda_mrp L_MRP]; the event stream's
    per-step TET terms are weighted by (1 - s_t) (without CKA: fixed at their initial value,
    `no_cka_step_weights`). Each light head is initialised from its own seed drawn once, so a
    method's heads start equal to tmkt's whichever other heads it has (one-factor ablations).
    """

    mixer = "sliding"
    use_cka = True
    use_mag = False
    use_mrp = False

    def __init__(self, model: nn.Module, cfg: MethodConfig, T: int, epochs: int = 1) -> None:
        super().__init__(model, cfg, T, epochs)
        kw: dict[str, Any] = {}
        if cfg.schedule == "power":
            kw["k"] = cfg.schedule_k
        elif cfg.schedule == "constant":
            kw["value"] = cfg.schedule_value
        self.schedule = build_schedule(cfg.schedule, **kw)
        if self.use_cka:
            self.aux["domain"] = losses.DomainLoss(T, init=cfg.cka_init)
        feat_dim = getattr(model, "feature_dim", None)
        if (self.use_mag or self.use_mrp) and feat_dim is None:
            raise ValueError(f"method {self.name!r} needs a model with `feature_dim`")
        head_seed = int(torch.randint(2**62, (1,)))  # one draw, whichever heads exist
        if self.use_mag:
            self.aux["mag"] = _seeded(lambda: MAGHead(feat_dim), head_seed)
        if self.use_mrp:
            self.aux["mrp"] = _seeded(lambda: MRPHead(feat_dim), head_seed + 1)

    def schedule_value(self, progress: float) -> float:
        return float(min(1.0, max(0.0, self.schedule(progress))))

    def streams(self, x_src: torch.Tensor, x_evt: torch.Tensor):
        """Run both `[T,B,...]` streams through the shared network, each normalised by its own
        BN statistics (He et al.): as two passes, or as one batch with the streams interleaved
        and per-stream statistics (`two_stream: concat`, see `tmkt.snn.stream_bn`). With
        `bn_stats: event` only the event stream updates the running statistics."""
        event_only = self.cfg.bn_stats == "event"
        if self.concat_streams(x_src.device):
            with stream_batch_norm(2), frozen_streams({0} if event_only else set()):
                out = self.model(interleave(x_src, x_evt))
            return _deinterleave(out, 0), _deinterleave(out, 1)
        if event_only:
            with keep_running_stats(self.model):
                out_s = self.model(x_src)
        else:
            out_s = self.model(x_src)
        return out_s, self.model(x_evt)

    def concat_streams(self, device: torch.device) -> bool:
        """Whether this step runs the streams as one batch: `concat`, or `auto` on CUDA when
        every BN layer can keep per-stream statistics (measured faster there, and two passes
        faster on the CPU: docs/benchmarks.md, Two-stream)."""
        mode = self.cfg.two_stream
        if mode == "separate":
            return False
        foreign = foreign_batch_norms(self.model)  # a walk over the modules, small next to a step
        if mode == "concat":
            if foreign:
                raise ValueError(
                    "method.two_stream: concat needs per-stream BN statistics, which only "
                    f"tmkt.snn.SeqBatchNorm2d keeps; the model has {', '.join(foreign)}. Use "
                    "two_stream: separate (or auto)"
                )
            return True
        return device.type == "cuda" and not foreign

    def forward(self, batch: Batch, progress: float) -> tuple[torch.Tensor, Terms]:
        if batch.static is None or batch.events is None:
            raise ValueError(f"method {self.name!r} needs paired static and event frames")
        B, T = batch.events.shape[:2]
        r = self.schedule_value(progress)
        mask = tsm.sample_mask(self.mixer, B, T, r, self.generator)  # CPU generator
        if batch.events.is_cuda:  # pinned + non-blocking: no host sync in the step
            mask = mask.pin_memory().to(batch.events.device, non_blocking=True)
        mixed = tsm.mix_by_mask(batch.static, batch.events, mask)
        out_s, out_e = self.streams(time_first(mixed.x), time_first(batch.events))
        y = batch.label
        l_src = self.tet(out_s.logits_src, y)
        terms: Terms = {"l_src": l_src.detach(), "r": torch.tensor(r)}
        total = l_src
        weights = None
        if self.use_cka:
            l_dom, s = self.aux["domain"](out_s.feat_cka, out_e.feat_cka)
            weights = 1.0 - (s.detach() if self.cfg.detach_step_weights else s)
            total = total + self.cfg.beta * l_dom
            terms["l_dom"] = l_dom.detach()
            terms["s_mean"] = s.detach().mean()
        elif self.cfg.no_cka_step_weights == "initial":
            c0 = torch.full((T,), float(self.cfg.cka_init), device=batch.events.device)
            weights = 1.0 - torch.sigmoid(c0)  # tmkt's weights at initialisation, fixed
        l_evt = self.tet(out_e.logits_evt, y, weights)
        total = total + l_evt
        terms["l_evt"] = l_evt.detach()
        if self.use_mag:
            mag_logits = self.aux["mag"](_at_least_float(out_s.feat_pool))  # [T,B]
            l_mag = losses.mag_loss(mag_logits, mixed.mag_target)
            total = total + self.cfg.lambda_mag * l_mag
            pred = (mag_logits.detach() > 0).transpose(0, 1).float()
            terms["l_mag"] = l_mag.detach()
            terms["mag_err"] = (pred != mixed.mag_target).float().mean()
        if self.use_mrp:
            score = self.aux["mrp"].logits(_at_least_float(out_s.feat_pool))  # [B], pre-sigmoid
            linear = self.cfg.mrp_loss == "mse" and self.cfg.mrp_output == "linear"
            rho = score if linear else torch.sigmoid(score)
            l_mrp = losses.mrp_loss(rho, mixed.mrp_target, self.cfg.mrp_loss)
            total = total + self.cfg.lambda_mrp * l_mrp
            terms["l_mrp"] = l_mrp.detach()
            err = rho.detach().clamp(0.0, 1.0) - mixed.mrp_target
            terms["mrp_err"] = err.abs().mean()
        terms["loss"] = total.detach()
        terms["acc"] = accuracy(out_e.logits_evt, y)
        terms["acc_src"] = accuracy(out_s.logits_src, y)
        return total, terms


def _seeded(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`make()` with torch's CPU generator seeded to `seed`, the global stream left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _deinterleave(out: Any, stream: int) -> Any:
    """One stream of every `[T,2B,...]` field of a NetOutput (NamedTuple or dataclass) whose
    batch holds two interleaved streams."""
    if dataclasses.is_dataclass(out):
        return dataclasses.replace(out, **{
            f.name: deinterleave(getattr(out, f.name), 2, stream) for f in dataclasses.fields(out)
        })
    return type(out)(*(deinterleave(t, 2, stream) for t in out))


def foreign_batch_norms(model: nn.Module) -> list[str]:
    """Names of BN layers in `model` that cannot keep per-stream statistics (not SeqBatchNorm2d)."""
    return [
        f"{name or 'model'} ({type(m).__name__})" for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, SeqBatchNorm2d)
    ]


@METHODS.register("sliding")
class SlidingMethod(TwoStreamMethod):
    """He et al. (AAAI 2024): whole static sequence replaced by events with P = schedule."""

    name = "sliding"
    mixer = "sliding"


@METHODS.register("tmkt")
class TMKTMethod(TwoStreamMethod):
    """TMKT: TSM-mixed source stream at r_m = schedule(progress), CKA, MAG and MRP."""

    name = "tmkt"
    mixer = "tsm"
    use_mag = True
    use_mrp = True


@METHODS.register("tmkt_no_mag")
class TMKTNoMAG(TMKTMethod):
    """Ablation: TMKT without the MAG head/loss."""

    name = "tmkt_no_mag"
    use_mag = False


@METHODS.register("tmkt_no_mrp")
class TMKTNoMRP(TMKTMethod):
    """Ablation: TMKT without the MRP head/loss."""

    name = "tmkt_no_mrp"
    use_mrp = False


@METHODS.register("tmkt_no_cka")
class TMKTNoCKA(TMKTMethod):
    """Ablation: TMKT without CKA alignment; the event-stream TET weights stay at tmkt's
    initial 1 - sigmoid(cka_init) (`no_cka_step_weights: initial`), so only L_dom is gone."""

    name = "tmkt_no_cka"
    use_cka = False


@METHODS.register("tmkt_untruncated")
class TMKTUntruncated(TMKTMethod):
    """Ablation: per-frame independent mixing at the same expected event fraction."""

    name = "tmkt_untruncated"
    mixer = "untruncated"


def build_method(
    cfg: MethodConfig, model: nn.Module, T: int, epochs: int = 1
) -> Method:
    """Instantiate the method named `cfg.name` (unknown names list the valid ones)."""
    return METHODS.get(cfg.name)(model, cfg, T, epochs)
