"""Optional Triton kernels for the multi-step LIF on CUDA: the whole time loop in one kernel.

The torch path launches ~10 small kernels per time step; on a GPU that launch overhead dominates.
Used automatically for contiguous float32 CUDA tensors and the built-in surrogates when Triton
is importable; otherwise tmkt.snn.neuron's torch loop runs (same arithmetic).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tmkt.snn.surrogate import ATan, Sigmoid, Surrogate, Triangle

try:  # pragma: no cover - exercised only where Triton and a GPU exist
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None

_SG_IDS = {Triangle: 0, ATan: 1, Sigmoid: 2}
ENABLED = True  # set False to force the torch loop (tests compare the two)
_BLOCK = 1024


def usable(x: Tensor, sg: Surrogate | None = None) -> bool:
    """True when the Triton kernels can run on x (CUDA, float32, contiguous, known surrogate)."""
    return (
        ENABLED
        and triton is not None
        and x.is_cuda
        and x.dtype == torch.float32
        and x.is_contiguous()
        and (sg is None or type(sg) in _SG_IDS)
    )


if triton is not None:  # pragma: no cover

    @triton.jit
    def _fwd_kernel(buf, spikes, vseq, N, T, tau, vth, HARD: tl.constexpr,
                    STORE_S: tl.constexpr, STORE_V: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        v = tl.zeros([BLOCK], dtype=tl.float32)
        pb = buf + offs  # pointers step by N per time step (no t * N overflow)
        ps = spikes + offs
        pv = vseq + offs
        for _ in range(T):
            x = tl.load(pb, mask=mask, other=0.0)
            h = (x - v) / tau + v
            tl.store(pb, h, mask=mask)
            s = (h >= vth).to(tl.float32)
            if STORE_S:
                tl.store(ps, s, mask=mask)
            if HARD:
                v = tl.where(h >= vth, 0.0, h)
            else:
                v = h - vth * s
            if STORE_V:
                tl.store(pv, v, mask=mask)
            pb += N
            ps += N
            pv += N

    @triton.jit
    def _bwd_kernel(buf, gs, gv, N, last, T, tau, vth, alpha, SG: tl.constexpr,
                    HARD: tl.constexpr, DETACH: tl.constexpr, HAS_GV: tl.constexpr,
                    BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        carry = tl.zeros([BLOCK], dtype=tl.float32)
        keep = 1.0 - 1.0 / tau
        pb = buf + last + offs  # start at step T-1, step back by N
        ps = gs + last + offs
        pv = gv + last + offs
        for _ in range(T):
            h = tl.load(pb, mask=mask, other=0.0)
            z = h - vth
            if SG == 0:
                d = tl.maximum(alpha - alpha * alpha * tl.abs(z), 0.0)
            elif SG == 1:
                w = z * (3.141592653589793 / 2 * alpha)
                d = (alpha / 2) / (1 + w * w)
            else:
                sig = 1.0 / (1.0 + tl.exp(-alpha * z))
                d = sig * (1 - sig) * alpha
            g_vt = carry
            if HAS_GV:
                g_vt = g_vt + tl.load(pv, mask=mask, other=0.0)
            gh = tl.load(ps, mask=mask, other=0.0) * d
            if HARD:
                dvdh = (h < vth).to(tl.float32)
                if not DETACH:
                    dvdh = dvdh - h * d
                gh = gh + g_vt * dvdh
            else:
                if DETACH:
                    gh = gh + g_vt
                else:
                    gh = gh + g_vt * (1.0 - vth * d)
            tl.store(pb, gh / tau, mask=mask)
            carry = gh * keep
            pb -= N
            ps -= N
            pv -= N


def forward_inplace(
    buf: Tensor, tau: float, vth: float, hard: bool, spikes: Tensor | None, v_seq: Tensor | None
) -> None:
    """Triton version of neuron.lif_forward_inplace (buf becomes h)."""
    T = buf.shape[0]
    N = buf[0].numel()
    grid = (math.ceil(N / _BLOCK),)
    _fwd_kernel[grid](
        buf, buf if spikes is None else spikes, buf if v_seq is None else v_seq, N, T,
        float(tau), float(vth), HARD=hard, STORE_S=spikes is not None,
        STORE_V=v_seq is not None, BLOCK=_BLOCK,
    )


def backward_inplace(
    h_seq: Tensor, g_s: Tensor, g_v: Tensor | None, tau: float, vth: float, hard: bool,
    detach: bool, sg: Surrogate,
) -> None:
    """Triton version of neuron.lif_backward_inplace (h_seq becomes dL/dx)."""
    T = h_seq.shape[0]
    N = h_seq[0].numel()
    g_s = g_s.contiguous()
    g_v = None if g_v is None else g_v.contiguous()
    grid = (math.ceil(N / _BLOCK),)
    _bwd_kernel[grid](
        h_seq, g_s, g_s if g_v is None else g_v, N, (T - 1) * N, T, float(tau), float(vth),
        float(sg.alpha), SG=_SG_IDS[type(sg)], HARD=hard, DETACH=detach,
        HAS_GV=g_v is not None, BLOCK=_BLOCK,
    )
