"""LIF neuron (SPEC §7): m <- m + (x - m)/tau, s = H(m - V_th), then hard (to 0) or soft reset.

Multi-step mode runs a whole [T, B, ...] sequence in one fused autograd function that keeps only
the pre-spike membrane sequence for backward, and always starts from rest (no state leaks between
sequences). Single-step mode keeps the membrane between calls until `reset()`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from tmkt.snn import lif_triton
from tmkt.snn.conv import CONV_ALGOS
from tmkt.snn.surrogate import Surrogate, build_surrogate

RESETS = ("hard", "soft")
STEP_MODES = ("m", "s")
CONV_TIME_MODES = ("auto", "fold", "step")
BN_LIF_SAVES = ("membrane", "input")


@dataclass(frozen=True)
class LIFConfig:
    """Neuron settings. Defaults follow SPEC §7 / He et al.: tau 2, V_th 0.5, detached hard reset,
    triangle surrogate with alpha 2 (alpha None = the surrogate's own default).

    Speed/memory settings of the conv-BN-LIF block (`ConvBNLIF`); they change no result beyond
    floating-point rounding: conv_time, how its convolution runs over T ('auto' [default]: one
    call per time step on CPU for output frames >= 24x24 unless the host allocator caches, else
    one call over T*B; 'fold'; 'step'; see `SeqToANN`); bn_lif_saves, what the fused BN+LIF
    node keeps for backward ('membrane' [default]: BN input and membrane, no recomputation;
    'input': only the BN input, recomputing BN and the membrane in backward, one
    activation-size tensor less per block; see `tmkt.snn.fused`); conv_algo, the CPU
    convolution algorithm of the blocks ('auto' [default]: NNPACK's Winograd for wide 3x3
    convolutions, else torch's; 'default'; 'winograd'; see `tmkt.snn.conv`)."""

    tau: float = 2.0
    v_threshold: float = 0.5
    reset: str = "hard"
    detach_reset: bool = True
    surrogate: str = "triangle"
    alpha: float | None = None
    conv_time: str = "auto"
    bn_lif_saves: str = "membrane"
    conv_algo: str = "auto"

    def __post_init__(self) -> None:
        if not (isinstance(self.tau, int | float) and math.isfinite(self.tau) and self.tau >= 1):
            raise ValueError(f"LIF tau must be a number >= 1, got {self.tau!r}")
        if not (isinstance(self.v_threshold, int | float) and math.isfinite(self.v_threshold)):
            raise ValueError(f"LIF v_threshold must be a finite number, got {self.v_threshold!r}")
        if self.reset not in RESETS:
            raise ValueError(f"LIF reset must be one of {RESETS}, got {self.reset!r}")
        if self.conv_time not in CONV_TIME_MODES:
            raise ValueError(
                f"conv_time must be one of {CONV_TIME_MODES}, got {self.conv_time!r}"
            )
        if self.conv_algo not in CONV_ALGOS:
            raise ValueError(
                f"conv_algo must be one of {CONV_ALGOS}, got {self.conv_algo!r}"
            )
        if self.bn_lif_saves not in BN_LIF_SAVES:
            raise ValueError(
                f"bn_lif_saves must be one of {BN_LIF_SAVES}, got {self.bn_lif_saves!r}"
            )
        build_surrogate(self.surrogate, self.alpha)  # validates name and alpha

    @classmethod
    def from_kwargs(cls, cfg: LIFConfig | dict[str, Any] | None = None, **kw: Any) -> LIFConfig:
        """Merge a config (or dict) with keyword overrides; unknown keys raise a clear error."""
        base = asdict(cfg) if isinstance(cfg, LIFConfig) else dict(cfg or {})
        base.update(kw)
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(base) - valid)
        if unknown:
            raise ValueError(f"unknown neuron option(s) {unknown}; valid: {sorted(valid)}")
        return cls(**base)


def lif_forward_inplace(
    buf: Tensor, tau: float, vth: float, hard: bool, spikes: Tensor | None, v_seq: Tensor | None
) -> None:
    """Overwrite buf[T, ...] (the LIF input) with the pre-spike membrane h; fill spikes/v_seq.
    In-place ops on preallocated buffers: a handful of elementwise passes per step."""
    if lif_triton.usable(buf):
        lif_triton.forward_inplace(buf, tau, vth, hard, spikes, v_seq)
        return
    s_tmp = torch.empty_like(buf[0]) if spikes is None else None
    v_tmp = torch.zeros_like(buf[0]) if v_seq is None else None
    v = torch.zeros_like(buf[0])
    for t in range(buf.shape[0]):
        h = buf[t]
        h.sub_(v).div_(tau).add_(v)  # h = v + (x - v) / tau
        s = s_tmp if spikes is None else spikes[t]
        torch.ge(h, vth, out=s)
        v = v_tmp if v_seq is None else v_seq[t]
        if hard:
            torch.addcmul(h, h, s, value=-1.0, out=v)  # h (1 - s), exact for s in {0, 1}
        else:
            torch.add(h, s, alpha=-vth, out=v)  # h - V_th s


def lif_backward_inplace(
    h_seq: Tensor, g_s: Tensor, g_v: Tensor | None, tau: float, vth: float, hard: bool,
    detach: bool, sg: Surrogate,
) -> None:
    """Overwrite h_seq[T, ...] with dL/dx (x = the LIF input), going backward in time."""
    if lif_triton.usable(h_seq, sg):
        lif_triton.backward_inplace(h_seq, g_s, g_v, tau, vth, hard, detach, sg)
        return
    keep = 1.0 - 1.0 / tau
    carry: Tensor | None = None  # dL/dv_t from step t+1
    mask = torch.empty_like(h_seq[0]) if hard else None
    for t in range(h_seq.shape[0] - 1, -1, -1):
        h = h_seq[t]
        d = sg.grad(h - vth)  # ds/dh
        g_vt = carry
        if g_v is not None:
            g_vt = g_v[t] if g_vt is None else g_vt.add_(g_v[t])
        gh = g_s[t] * d
        if g_vt is not None:
            if hard:  # dv/dh = 1 - s (- h g' if the reset is not detached)
                assert mask is not None
                torch.lt(h, vth, out=mask)
                if not detach:
                    mask.addcmul_(h, d, value=-1.0)
                gh.addcmul_(g_vt, mask)
            elif detach:  # dv/dh = 1
                gh.add_(g_vt)
            else:  # dv/dh = 1 - V_th g'
                gh.add_(g_vt).addcmul_(g_vt, d, value=-vth)
        torch.div(gh, tau, out=h)
        carry = gh.mul_(keep)


class _LIFMultiStep(torch.autograd.Function):
    """Fused LIF recurrence over T. Saves only the pre-spike membrane h[T, ...] for backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, tau: float, vth: float, hard: bool, detach: bool, sg: Surrogate,
        want_v: bool,
    ) -> tuple[Tensor, Tensor]:
        h_seq = x.clone(memory_format=torch.contiguous_format)
        spikes = torch.empty_like(h_seq)
        v_seq = torch.empty_like(h_seq) if want_v else x.new_empty(0)
        lif_forward_inplace(h_seq, tau, vth, hard, spikes, v_seq if want_v else None)
        ctx.save_for_backward(h_seq)
        ctx.cfg = (tau, vth, hard, detach, sg, want_v)
        return spikes, v_seq

    @staticmethod
    def backward(ctx, g_s: Tensor, g_v: Tensor):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        tau, vth, hard, detach, sg, want_v = ctx.cfg
        g_x = h_seq.clone()
        lif_backward_inplace(g_x, g_s, g_v if want_v else None, tau, vth, hard, detach, sg)
        return g_x, None, None, None, None, None, None


def lif_multistep(
    x: Tensor, cfg: LIFConfig | None = None, *, return_v: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Run LIF over x[T, ...] from rest; returns (spikes[T, ...], post-reset membrane or None)."""
    cfg = cfg or LIFConfig()
    if x.dim() < 2:
        raise ValueError(f"LIF multi-step input must be [T, B, ...], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"LIF input must be a floating tensor, got dtype {x.dtype}")
    sg = build_surrogate(cfg.surrogate, cfg.alpha)
    spikes, v = _LIFMultiStep.apply(
        x, float(cfg.tau), float(cfg.v_threshold), cfg.reset == "hard", cfg.detach_reset, sg,
        return_v,
    )
    return spikes, (v if return_v else None)


class LIF(nn.Module):
    """LIF neuron layer. step_mode 'm': forward(x[T, B, ...]) from rest each call; 's': forward(x[B,
    ...]) one step, membrane kept in `self.v` until `reset()` (or a batch of another shape)."""

    def __init__(
        self, cfg: LIFConfig | dict[str, Any] | None = None, *, step_mode: str = "m", **kw: Any
    ) -> None:
        super().__init__()
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
        self.cfg = LIFConfig.from_kwargs(cfg, **kw)
        self.sg = build_surrogate(self.cfg.surrogate, self.cfg.alpha)
        self.step_mode = step_mode
        self.v: Tensor | None = None
        self.monitor: Any = None  # set by FiringRateMonitor; None = recording off

    def extra_repr(self) -> str:
        c = self.cfg
        return (
            f"tau={c.tau}, v_threshold={c.v_threshold}, reset={c.reset}, "
            f"detach_reset={c.detach_reset}, surrogate={self.sg}, step_mode={self.step_mode}"
        )

    def reset(self) -> None:
        """Forget the single-step membrane state."""
        self.v = None

    def forward(self, x: Tensor) -> Tensor:
        """Spikes, same shape as x."""
        return self._run(x, want_v=False)[0]

    def forward_with_v(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(spikes, post-reset membrane), both the shape of x; the membrane is differentiable."""
        s, v = self._run(x, want_v=True)
        assert v is not None
        return s, v

    def _run(self, x: Tensor, want_v: bool) -> tuple[Tensor, Tensor | None]:
        if self.step_mode == "m":
            s, v = lif_multistep(x, self.cfg, return_v=want_v)
        else:
            s, v = self._single_step(x)
        if self.monitor is not None:
            self.monitor.record(self, s)
        return s, v

    def _single_step(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c = self.cfg
        if self.v is None or self.v.shape != x.shape:
            self.v = torch.zeros_like(x)
        h = self.v + (x - self.v) / c.tau
        s = self.sg(h - c.v_threshold)
        r = s.detach() if c.detach_reset else s
        v = h * (1.0 - r) if c.reset == "hard" else h - c.v_threshold * r
        self.v = v
        return s, v


def reset_states(model: nn.Module) -> None:
    """Reset every single-step LIF in `model` (multi-step LIFs hold no state)."""
    for m in model.modules():
        if isinstance(m, LIF):
            m.reset()
