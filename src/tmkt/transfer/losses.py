"""Training losses: TET classification, linear CKA domain alignment, MAG and MRP (SPEC §4-§5).

Networks are time-first, so logits are `[T, B, K]` and CKA features `[T, B, ...]`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DomainLoss", "centred_gram", "linear_cka", "linear_cka_over_time", "mag_loss", "mrp_loss",
    "tet_loss",
]

_CKA_EPS = 1e-7
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_TINY = 1e-30  # keeps the gradient of a norm finite when a centred Gram matrix is exactly zero


def tet_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    lam: float = 1e-3,
    phi: float = 0.5,
    step_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """TET loss: (1-lam) (1/T) sum_t w_t CE(o^t, y) + lam (1/T) sum_t w_t MSE(o^t, phi).

    `logits` [T,B,K], `y` [B] class indices; w_t = 1 without `step_weights` [T]. As in He et
    al.'s main_transfer.py, the weights multiply both per-step terms and the sums are still
    divided by T (not by sum w_t); for the event stream pass w = 1 - s from `DomainLoss`
    (undetached there, so c_t also gets gradient from this term). CE is averaged over the batch,
    MSE over batch and classes.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be [T, B, K], got shape {tuple(logits.shape)}")
    T, B, _ = logits.shape
    if y.shape != (B,):
        raise ValueError(f"y must be [B] = [{B}], got shape {tuple(y.shape)}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam!r}")
    y = y.to(logits.device)
    K = logits.shape[2]  # one cross-entropy call over all T steps, then the per-step means
    ce = F.cross_entropy(logits.reshape(T * B, K), y.repeat(T), reduction="none").view(T, B)
    ce = ce.mean(1)  # [T]
    mse = ((logits - phi) ** 2).mean(dim=(1, 2))  # [T]
    if step_weights is not None:
        if step_weights.shape != (T,):
            raise ValueError(
                f"step_weights must be [T] = [{T}], got shape {tuple(step_weights.shape)}"
            )
        w = step_weights.to(device=logits.device, dtype=logits.dtype)
        ce, mse = ce * w, mse * w
    return (1.0 - lam) * ce.mean() + lam * mse.mean()


class _CentredGram(torch.autograd.Function):
    """Kc = Xc Xc^T with Xc = X - mean over the batch, for X [T, B, D]; backward in one matmul:
    dL/dX = H (G + G^T) Xc (H the B x B centring matrix, applied to the small B x B factor)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        xc = x - x.mean(dim=1, keepdim=True)
        ctx.save_for_backward(xc)
        return torch.bmm(xc, xc.transpose(1, 2))

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (xc,) = ctx.saved_tensors
        gs = g + g.transpose(1, 2)
        gs = gs - gs.mean(dim=1, keepdim=True)  # H (G + G^T)
        return torch.bmm(gs.to(xc.dtype), xc)


def centred_gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrices of batch-centred features: x [T, B, D] -> [T, B, B] (see linear_cka).

    Same values and gradient as `xc = x - x.mean(1, keepdim=True); xc @ xc.transpose(1, 2)`,
    with one batched matmul in backward instead of two plus the centring passes (measured: the
    domain loss on [8, 32, 8192] features, fwd+bwd, 43 -> 24 ms on 2 CPU cores,
    docs/benchmarks.md)."""
    if x.dim() != 3:
        raise ValueError(f"centred_gram expects [T, B, D], got shape {tuple(x.shape)}")
    return _CentredGram.apply(x)


def linear_cka(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """Linear CKA of two [B, D...] feature batches: <Kc,Lc>_F / (||Kc|| ||Lc|| + 1e-7).

    K = F F^T, L = G G^T over the B samples actually present (partial batches are fine; the
    feature widths may differ). Centring the features is the same as centring K and L. With
    B = 1 (or constant features) the centred Gram matrices are exactly zero and the result is
    the formula's own value, 0, with finite (zero) gradients: one sample carries no similarity
    structure to align.
    """
    if feat_a.dim() < 2 or feat_b.dim() < 2:
        raise ValueError("features must be [B, D, ...]")
    if feat_a.shape[0] != feat_b.shape[0]:
        raise ValueError(f"batch sizes differ: {feat_a.shape[0]} and {feat_b.shape[0]}")
    if feat_a.shape[0] == 0:
        raise ValueError("linear_cka needs at least one sample")
    B = feat_a.shape[0]
    return _cka(feat_a.reshape(1, B, -1), feat_b.reshape(1, B, -1))[0]


def linear_cka_over_time(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """`linear_cka` of each time step of `[T, B, D...]` features, batched over T: `[T]`."""
    if feat_a.dim() < 3 or feat_b.dim() < 3:
        raise ValueError("features must be [T, B, D, ...]")
    if feat_a.shape[:2] != feat_b.shape[:2]:
        raise ValueError(
            f"time/batch sizes differ: {tuple(feat_a.shape[:2])} and {tuple(feat_b.shape[:2])}"
        )
    T, B = feat_a.shape[:2]
    return _cka(feat_a.reshape(T, B, -1), feat_b.reshape(T, B, -1))


def _cka(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Linear CKA of each of the T pairs of [T, B, D] feature batches (checked by the callers)."""
    if fa.dtype in _LOW_PRECISION or fb.dtype in _LOW_PRECISION:
        fa, fb = fa.float(), fb.float()  # Gram entries overflow float16 (and lose bfloat16 bits)
    kc = centred_gram(fa)
    lc = centred_gram(fb)
    hsic = (kc * lc).sum(dim=(1, 2))
    norm_k = torch.sqrt((kc * kc).sum(dim=(1, 2)).clamp_min(_TINY))
    norm_l = torch.sqrt((lc * lc).sum(dim=(1, 2)).clamp_min(_TINY))
    return hsic / (norm_k * norm_l + _CKA_EPS)


class DomainLoss(nn.Module):
    """L_dom = (1/T) sum_t s_t (1 - |CKA(F_src^t, F_evt^t)|), s_t = sigmoid(c_t), c_t learnable
    and initialised to `init` (1 in He et al.); forward returns (loss, s [T])."""

    def __init__(self, T: int, init: float = 1.0) -> None:
        super().__init__()
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be an integer >= 1, got {T!r}")
        self.T = T
        self.c = nn.Parameter(torch.full((T,), float(init)))

    def forward(
        self, feat_src: torch.Tensor, feat_evt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`feat_src`, `feat_evt`: [T, B, D...] features of the two streams."""
        if feat_src.dim() < 3 or feat_evt.dim() < 3:
            raise ValueError("features must be [T, B, D, ...]")
        if feat_src.shape[:2] != feat_evt.shape[:2] or feat_src.shape[0] != self.T:
            raise ValueError(
                f"expected [T={self.T}, B, ...] for both streams, got {tuple(feat_src.shape)} "
                f"and {tuple(feat_evt.shape)}"
            )
        s = torch.sigmoid(self.c)
        cka = linear_cka_over_time(feat_src, feat_evt)
        loss = (s.to(cka.dtype) * (1.0 - cka.abs())).mean()
        return loss, s


def _to_time_first(x: torch.Tensor, layout: str, name: str) -> torch.Tensor:
    if layout == "TB":
        return x
    if layout == "BT":
        return x.transpose(0, 1)
    raise ValueError(f"{name} must be 'TB' or 'BT', got {layout!r}")


def mag_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    logits_layout: str = "TB",
    target_layout: str = "BT",
) -> torch.Tensor:
    """MAG loss: BCE-with-logits of the per-frame source prediction, averaged over T and B.

    Layouts are explicit (T may equal B): the defaults match `MAGHead` logits [T,B] and
    `Mixed.mag_target` [B,T].
    """
    if logits.dim() != 2 or target.dim() != 2:
        raise ValueError("MAG logits and target must be 2-D ([T,B] or [B,T])")
    lg = _to_time_first(logits, logits_layout, "logits_layout")
    tg = _to_time_first(target, target_layout, "target_layout")
    if lg.shape != tg.shape:
        raise ValueError(
            f"MAG logits {tuple(logits.shape)} ({logits_layout}) and target "
            f"{tuple(target.shape)} ({target_layout}) do not match"
        )
    return F.binary_cross_entropy_with_logits(lg, tg.to(device=lg.device, dtype=lg.dtype))


def mrp_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """MRP loss of predicted event fractions `pred` [B] in [0,1] (a sigmoid output) against
    `target` [B]: "mse" (default) or "bce" (cross-entropy with the soft target; its minimum is
    the target's entropy, not 0)."""
    if pred.shape != target.shape or pred.dim() != 1:
        raise ValueError(
            f"pred and target must both be [B], got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    target = target.to(device=pred.device, dtype=pred.dtype)
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "bce":
        return F.binary_cross_entropy(pred, target)
    raise ValueError(f"unknown MRP loss {kind!r}; valid: mse, bce")
