"""Classifier heads applied per time step to [T, B, F] features."""

from __future__ import annotations

from torch import Tensor, nn


class LinearHead(nn.Linear):
    """A linear classifier on the last axis: [T, B, F] -> [T, B, K] (one weight for all steps)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"head expects features of size {self.in_features}, got shape {list(x.shape)}"
            )
        return super().forward(x)
