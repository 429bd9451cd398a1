"""DDP setup from torchrun's environment: NCCL on GPU, gloo on CPU; rank-0-only helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (world_size 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the only rank that writes files)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when running under a process group with more than one rank."""
        return self.world_size > 1


def env_dist_info() -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (defaults: one process)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


class DeviceError(ValueError):
    """The requested device is not available here (a user error: one line, exit status 2)."""


def resolve_device(name: str, info: DistInfo, setting: str | None = None) -> torch.device:
    """"auto" -> this rank's GPU when available, else CPU; "cuda" without a GPU is a
    DeviceError naming `setting` (e.g. "train.device"; None: the device in general)."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            asked = f"{setting}=cuda" if setting else "device cuda"
            fix = f"set {setting}=cpu or auto" if setting else "use device cpu or auto"
            raise DeviceError(
                f"{asked} was asked for, but this machine has no usable CUDA device "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False); {fix}"
            )
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun with WORLD_SIZE > 1."""
    info = env_dist_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return info


def barrier(info: DistInfo) -> None:
    """Synchronise all ranks (no-op for one process)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_float(value: float, info: DistInfo, device: torch.device) -> float:
    """Rank 0's `value` on every rank."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of `t` over ranks (returns `t` unchanged for one process)."""
    if not (info.enabled and dist.is_initialized()):
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / info.world_size


def cleanup(info: DistInfo) -> None:
    """Leave the process group if we joined one."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if not (info.enabled and dist.is_initialized()):
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)
