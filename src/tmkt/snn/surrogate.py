"""Surrogate gradients for the Heaviside spike function (forward: step; backward: smooth g')."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Surrogate:
    """A surrogate derivative g'(x) of the spike function H(x) = [x >= 0], with shape `alpha`."""

    name: str = ""
    default_alpha: float = 1.0

    def __init__(self, alpha: float | None = None) -> None:
        alpha = self.default_alpha if alpha is None else float(alpha)
        if not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"surrogate {self.name!r}: alpha must be positive, got {alpha}")
        self.alpha = alpha

    def grad(self, x: Tensor) -> Tensor:
        """g'(x), elementwise; a new tensor."""
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        """Spike H(x) with this surrogate in the backward pass (for single-step use)."""
        return _SpikeFn.apply(x, self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.alpha == other.alpha  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.alpha))


class Triangle(Surrogate):
    """g'(x) = max(0, alpha - alpha^2 |x|); He's QGateGrad, spikingjelly PiecewiseQuadratic."""

    name = "triangle"
    default_alpha = 2.0

    def grad(self, x: Tensor) -> Tensor:
        a = self.alpha
        return x.abs().mul_(-a * a).add_(a).clamp_(min=0.0)


class ATan(Surrogate):
    """g'(x) = (alpha/2) / (1 + (pi/2 alpha x)^2) (spikingjelly ATan)."""

    name = "atan"
    default_alpha = 2.0

    def grad(self, x: Tensor) -> Tensor:
        a = self.alpha
        z = x * (math.pi / 2 * a)
        return (a / 2) / (1 + z * z)


class Sigmoid(Surrogate):
    """g'(x) = alpha sig(alpha x)(1 - sig(alpha x)) (spikingjelly Sigmoid)."""

    name = "sigmoid"
    default_alpha = 4.0

    def grad(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.alpha * x)
        return s * (1 - s) * self.alpha


SURROGATES: dict[str, type[Surrogate]] = {c.name: c for c in (Triangle, ATan, Sigmoid)}


def build_surrogate(name: str | Surrogate, alpha: float | None = None) -> Surrogate:
    """A surrogate by name ('triangle', 'atan', 'sigmoid'); alpha None = its default alpha."""
    if isinstance(name, Surrogate):
        return name if alpha is None else type(name)(alpha)
    try:
        cls = SURROGATES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown surrogate {name!r}; valid: {', '.join(sorted(SURROGATES))}"
        ) from None
    return cls(alpha)


class _SpikeFn(torch.autograd.Function):
    """H(x) forward, surrogate g'(x) backward."""

    @staticmethod
    def forward(ctx, x: Tensor, sg: Surrogate) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.sg = sg
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out * ctx.sg.grad(x), None
