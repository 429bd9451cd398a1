"""Light MAG and MRP heads on the network's pooled features (SPEC §4); training aids only."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MAGHead", "MRPHead"]


def _check_pool(feat_pool: torch.Tensor, feature_dim: int) -> None:
    if feat_pool.dim() != 3 or feat_pool.shape[-1] != feature_dim:
        raise ValueError(
            f"expected pooled features [T, B, {feature_dim}], got {tuple(feat_pool.shape)}"
        )


class MAGHead(nn.Module):
    """Per-time-step modality logit: one linear layer on feat_pool [T,B,F] -> logits [T,B]
    (positive = frame from the event stream)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {feature_dim!r}")
        self.feature_dim = feature_dim
        self.fc = nn.Linear(feature_dim, 1)

    def forward(self, feat_pool: torch.Tensor) -> torch.Tensor:
        _check_pool(feat_pool, self.feature_dim)
        return self.fc(feat_pool).squeeze(-1)


class MRPHead(nn.Module):
    """Sequence-level event-fraction estimate rho in [0,1] [B]: a linear layer (or two with a
    ReLU between when hidden > 0) on the time-averaged feat_pool [T,B,F], then a sigmoid."""

    def __init__(self, feature_dim: int, hidden: int = 0) -> None:
        super().__init__()
        if feature_dim < 1 or hidden < 0:
            raise ValueError(f"need feature_dim >= 1 and hidden >= 0, got {feature_dim}, {hidden}")
        self.feature_dim = feature_dim
        if hidden > 0:
            self.mlp: nn.Module = nn.Sequential(
                nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1)
            )
        else:
            self.mlp = nn.Linear(feature_dim, 1)

    def logits(self, feat_pool: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores [B]."""
        _check_pool(feat_pool, self.feature_dim)
        return self.mlp(feat_pool.mean(dim=0)).squeeze(-1)

    def forward(self, feat_pool: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(feat_pool))
