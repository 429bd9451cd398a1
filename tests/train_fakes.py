"""Tiny stand-ins following the dataset/model contracts, for fast trainer tests (no files)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset

SIZES = {"train": 32, "val": 16, "test": 16}


class FakeOut(NamedTuple):
    logits_src: torch.Tensor
    logits_evt: torch.Tensor
    feat_cka: torch.Tensor
    feat_pool: torch.Tensor


class FakePaired(Dataset):
    """Class c lights up stripe c; static = clean stripe, events = noisy, time-varying stripe."""

    def __init__(self, T: int, hw: tuple[int, int], split: str, kind: str, k: int = 4) -> None:
        self.T, self.hw, self.kind, self.k = T, hw, kind, k
        self.classes = [f"c{i}" for i in range(k)]
        self.n = SIZES[split]
        self.salt = {"train": 0, "val": 1, "test": 2}[split]
        self.epoch = 0

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (2, *self.hw)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        y = i % self.k
        g = torch.Generator().manual_seed(1000 * self.salt + i)
        H, W = self.hw
        base = torch.zeros(2, H, W)
        base[:, :, y * W // self.k : (y + 1) * W // self.k] = 1.0
        static = base.expand(self.T, 2, H, W).clone()
        events = (torch.rand(self.T, 2, H, W, generator=g) < 0.6 * base + 0.1).float()
        if self.kind == "paired":
            g2 = torch.Generator().manual_seed(self.epoch * 7 + i)
            return static * (0.8 + 0.2 * torch.rand(1, generator=g2)), events, y
        return events, y


def fake_data_fn(data_cfg: Any, kind: str, split: str) -> Dataset:
    size = tuple(data_cfg.size) if data_cfg.size is not None else (8, 8)
    return FakePaired(data_cfg.T, size, split, kind)


class FakeSNN(nn.Module):
    """Per-step MLP with a leaky state; optional BatchNorm; NetOutput-shaped output."""

    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], bn: bool = False,
                 hidden: int = 16) -> None:
        super().__init__()
        d = in_shape[0] * in_shape[1] * in_shape[2]
        self.fc = nn.Linear(d, hidden)
        self.bn = nn.BatchNorm1d(hidden) if bn else nn.Identity()
        self.head_src = nn.Linear(hidden, num_classes)
        self.head_evt = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden

    def forward(self, x: torch.Tensor) -> FakeOut:
        T, B = x.shape[:2]
        h = self.fc(x.reshape(T * B, -1))
        h = self.bn(h).reshape(T, B, -1)
        v = torch.zeros_like(h[0])
        feats = []
        for t in range(T):
            v = 0.5 * v + torch.tanh(h[t])
            feats.append(v)
        f = torch.stack(feats)
        return FakeOut(self.head_src(f), self.head_evt(f), f, f)


def fake_model_fn(bn: bool = False):
    def make(model_cfg: Any, num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
        return FakeSNN(num_classes, in_shape, bn=bn)

    return make
