"""Open a trained run: its checkpoint, config, classes and the network with its weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tmkt.models.base import SpikingNet
from tmkt.train.checkpoint import CheckpointError, load_checkpoint
from tmkt.train.config import Config


@dataclass
class Trained:
    """A checkpoint's network (eval mode) and what it was trained on."""

    path: Path
    """The checkpoint file."""
    cfg: Config
    classes: list[str]
    in_shape: tuple[int, int, int]
    """(C, H, W) of one frame, as in training."""
    model: SpikingNet
    state: dict[str, Any]
    """The raw checkpoint (config JSON, method, epoch, ...)."""


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's `best.pt` (the checkpoint chosen on validation)."""
    p = Path(path)
    return p / "best.pt" if p.is_dir() else p


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> Trained:
    """Load a run's checkpoint (a file, or a run folder: its best.pt) and rebuild its network.

    A missing, damaged or foreign file, or weights that do not fit the network the config
    describes, is a CheckpointError naming the file."""
    from tmkt.train.loop import default_model_fn

    ckpt = checkpoint_file(path)
    st = load_checkpoint(ckpt)
    try:
        cfg = Config.from_json(st["config"])
        classes = [str(c) for c in st["classes"]]
        c, h, w = (int(v) for v in st["in_shape"])
        weights = st["model"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt}: not a checkpoint of a tmkt run ({e})") from None
    model = default_model_fn(cfg.model, len(classes), (c, h, w))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{ckpt}: the weights do not fit the {cfg.model.name} network of its config "
            f"({first[1].strip() if len(first) > 1 else first[0]})"
        ) from None
    model.to(device).eval()
    return Trained(ckpt, cfg, classes, (c, h, w), model, st)
