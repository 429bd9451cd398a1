"""Evaluation on event input only: event head, logits averaged over T (SPEC §5)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tmkt.snn.monitor import FiringRateMonitor


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """`torch.autocast` for amp "bf16"/"fp16", a no-op for "none"."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    *,
    classes: Sequence[str] | None = None,
    amp: str = "none",
    max_batches: int | None = None,
    firing_rates: bool = False,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy, mean CE loss, per-class accuracy and (optionally) firing rates.

    `loader` yields `(events [B,T,C,H,W], label)` (extra leading items, e.g. static frames of a
    paired loader, are ignored: the last two are used).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    correct1 = correct5 = n = 0
    loss_sum = 0.0
    num_classes = len(classes) if classes is not None else None
    per_correct: torch.Tensor | None = None
    per_total: torch.Tensor | None = None
    monitor = _monitor(model) if firing_rates else None
    try:
        with monitor if monitor is not None else contextlib.nullcontext():
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                x, y = batch[-2], batch[-1]
                x = x.to(device).transpose(0, 1).contiguous()
                y = torch.as_tensor(y).to(device)
                with autocast_context(device, amp):
                    out = model(x)
                logits = out.logits_evt.float().mean(0)  # [B,K]
                K = logits.shape[1]
                if per_correct is None:
                    per_correct = torch.zeros(num_classes or K, dtype=torch.long)
                    per_total = torch.zeros(num_classes or K, dtype=torch.long)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                topk = logits.topk(min(5, K), dim=1).indices
                hit1 = (topk[:, 0] == y).cpu()
                correct1 += int(hit1.sum())
                correct5 += int((topk == y[:, None]).any(1).sum())
                n += int(y.shape[0])
                yc = y.cpu()
                per_total.index_add_(0, yc, torch.ones_like(yc))
                per_correct.index_add_(0, yc, hit1.long())
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluation got no samples (empty split?)")
    names = list(classes) if classes is not None else [str(i) for i in range(len(per_total))]
    per_class = {
        names[c]: (float(per_correct[c]) / int(per_total[c]) if per_total[c] > 0 else None)
        for c in range(len(names))
    }
    result: dict[str, Any] = {
        "top1": correct1 / n,
        "top5": correct5 / n,
        "loss": loss_sum / n,
        "n": n,
        "per_class": per_class,
    }
    if monitor is not None:
        rates = monitor.rates()
        result["firing_rates"] = rates
        result["mean_firing_rate"] = monitor.mean_rate() if rates else None
    return result


def _monitor(model: nn.Module) -> FiringRateMonitor | None:
    try:
        return FiringRateMonitor(model)
    except ValueError:  # a model without LIF layers
        return None
