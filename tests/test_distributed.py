"""DDP on CPU (gloo, 2 processes): ranks end with equal weights, and equal (to float tolerance)
to one process on the same global batch.

The one-process equality needs per-sample losses and no batch statistics: the `dvs` method (TET
is a mean over samples) on a model without BatchNorm. With BatchNorm (or CKA, which couples the
samples of a batch) the ranks still agree with each other, but not with one process, because
each rank normalises over its half of the batch (as in any DDP run without SyncBatchNorm).
A third run trains tmkt on a real backbone with both streams as one batch (`two_stream:
concat`, BN statistics per stream), and its ranks must agree too.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp
from torch import nn
from train_fakes import fake_data_fn, fake_model_fn

from tmkt.models import build_model
from tmkt.train.config import Config, apply_overrides
from tmkt.train.loop import train

BASE = {"data.T": 3, "optim.batch_size": 8, "optim.lr": 0.02, "optim.warmup_epochs": 0,
        "optim.epochs": 2, "train.progress": False, "train.device": "cpu",
        "train.tensorboard": False, "train.plots": False}
def _real_model(model_cfg: Any, num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """A real backbone (SeqBatchNorm2d, fused BN+LIF) for the one-batch two-stream run."""
    return build_model("cnn_small", num_classes, in_shape=in_shape, width=0.25)


# tag -> (method, model factory, extra overrides)
RUNS: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "dvs_nobn": ("dvs", fake_model_fn(False), {}),
    "tmkt_bn": ("tmkt", fake_model_fn(True), {}),
    "tmkt_concat": ("tmkt", _real_model, {"method.two_stream": "concat"}),  # BN per stream
}


def _cfg(method: str, **extra: Any) -> Config:
    return apply_overrides(Config(), {**BASE, "method.name": method, **extra})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    for tag, (method, model_fn, extra) in RUNS.items():
        res = train(_cfg(method, **extra), out_dir=Path(out) / tag, data_fn=fake_data_fn,
                    model_fn=model_fn)
        torch.save(res.model_state, Path(out) / f"{tag}_rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_ranks_match_each_other_and_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for tag in RUNS:
        r0 = torch.load(tmp_path / f"{tag}_rank0.pt", weights_only=True)
        r1 = torch.load(tmp_path / f"{tag}_rank1.pt", weights_only=True)
        for k in r0:
            assert torch.equal(r0[k], r1[k]), (tag, k)
    # only rank 0 wrote the run folder
    assert (tmp_path / "dvs_nobn" / "last.pt").is_file()
    assert (tmp_path / "dvs_nobn" / "results.json").is_file()
    concat = json.loads((tmp_path / "tmkt_concat" / "results.json").read_text())
    assert concat["two_stream"] == "one batch, BN per stream"

    single = train(_cfg("dvs"), out_dir=tmp_path / "single", data_fn=fake_data_fn,
                   model_fn=fake_model_fn(False))
    ddp = torch.load(tmp_path / "dvs_nobn_rank0.pt", weights_only=True)
    init = fake_model_fn(False)(None, 4, (2, 8, 8)).state_dict()
    for k, v in single.model_state.items():
        assert torch.allclose(ddp[k], v, atol=1e-5, rtol=1e-4), k
        assert not torch.allclose(v, init[k])  # it did train (not trivially equal)
