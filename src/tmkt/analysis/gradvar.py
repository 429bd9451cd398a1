"""Minibatch gradient variance at fixed weights (SPEC §8: TSM vs sliding replacement).

For K minibatches the flattened gradients g_1..g_K give trace(Cov g) with the unbiased K-1
denominator, accumulated by Welford's method in float64 so memory stays O(#params).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["GradVarResult", "gradient_variance"]


@dataclass(frozen=True)
class GradVarResult:
    """trace_cov = sum_i Var(g_i) (K-1 denominator); mean_grad_norm_sq = ||mean_k g_k||^2;
    k = number of minibatches."""

    trace_cov: float
    mean_grad_norm_sq: float
    k: int

    @property
    def noise_to_signal(self) -> float:
        """trace_cov / ||mean gradient||^2 (inf when the mean gradient is zero)."""
        if self.mean_grad_norm_sq == 0.0:
            return float("inf")
        return self.trace_cov / self.mean_grad_norm_sq


def _flat_grad(params: list[nn.Parameter]) -> torch.Tensor:
    parts = [
        torch.zeros(p.numel(), dtype=torch.float64, device=p.device)
        if p.grad is None
        else p.grad.detach().reshape(-1).to(torch.float64)
        for p in params
    ]
    devices = {t.device for t in parts}
    if len(devices) > 1:  # model spread over devices: gather on the first one
        parts = [t.to(parts[0].device) for t in parts]
    return torch.cat(parts)


def gradient_variance(
    model: nn.Module,
    loss_fn: Callable[[Any], torch.Tensor],
    batches: Iterable[Any],
    params: Iterable[nn.Parameter] | None = None,
) -> GradVarResult:
    """Trace of the covariance of minibatch gradients of `loss_fn(batch)` w.r.t. `params`.

    `params` defaults to the model's parameters that require grad. The model is left as found:
    its state (weights and buffers such as BatchNorm statistics) and prior .grad values are
    restored, and its train/eval mode is neither read nor changed (set it before calling).
    Randomness inside `loss_fn` (e.g. mixing) is the caller's to seed.
    """
    plist = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
    if not plist:
        raise ValueError("no parameters that require grad")
    saved_state = copy.deepcopy(model.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in plist]
    count = 0
    mean: torch.Tensor | None = None
    m2 = 0.0
    try:
        for batch in batches:
            for p in plist:
                p.grad = None
            loss = loss_fn(batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar tensor")
            loss.backward()
            g = _flat_grad(plist)
            count += 1
            if mean is None:
                mean = g.clone()
                continue
            delta = g - mean
            mean += delta / count
            m2 += float(torch.dot(delta, g - mean))
    finally:
        model.load_state_dict(saved_state)
        for p, g0 in zip(plist, saved_grads, strict=True):
            p.grad = g0
    if count < 2 or mean is None:
        raise ValueError(f"need at least 2 minibatches for a variance, got {count}")
    return GradVarResult(
        trace_cov=m2 / (count - 1), mean_grad_norm_sq=float(torch.dot(mean, mean)), k=count
    )
