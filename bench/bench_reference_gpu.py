"""Throughput and peak memory of the reference setting (vgg_snn, T=10, 48x48, 101 classes, two
streams), and the projected wall time of a 300-epoch N-Caltech101 run from it.

    python bench/bench_reference_gpu.py --device cuda --batch 120 --amp none bf16
    python bench/bench_reference_gpu.py --device cpu --batch 2 --T 2 --steps 1 --warmup 0  # smoke

One method at a time (peak memory reset between them); steps are full optimiser steps on
synthetic batches (the method's own loss, backward, AdamW). The projection counts training steps
only (N-Caltech101: 8,709 recordings, minus 10 % test and 10 % validation -> 7,054 training
samples per epoch) plus one event-only forward over the 871 validation samples per epoch.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tmkt.models import build_model
from tmkt.train.config import MethodConfig
from tmkt.train.evaluate import autocast_context
from tmkt.train.methods import Batch, build_method

N_TRAIN, N_VAL, EPOCHS = 7054, 871, 300


def measure(method_name: str, args: argparse.Namespace, device: torch.device, amp: str) -> dict:
    """Median-free simple timing: warm-up, then `steps` timed steps; peak memory of the run."""
    torch.manual_seed(0)
    model = build_model("vgg_snn", 101, in_shape=(2, args.size, args.size))
    method = build_method(MethodConfig(name=method_name), model, args.T).to(device).train()
    opt = torch.optim.AdamW(method.parameters(), lr=1e-3)
    shape = (args.batch, args.T, 2, args.size, args.size)
    g = torch.Generator().manual_seed(1)
    batch = Batch(label=torch.randint(0, 101, (args.batch,), generator=g),
                  events=(torch.rand(shape, generator=g) < 0.1).float(),
                  static=torch.rand(shape, generator=g)).to(device)
    scaler = torch.amp.GradScaler(enabled=amp == "fp16")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        with autocast_context(device, amp):
            loss, _ = method.loss(batch, 0.5)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = (time.perf_counter() - t0) / args.steps
    # event-only evaluation forward (validation cost per epoch)
    method.eval()
    with torch.no_grad(), autocast_context(device, amp):
        x = batch.events.transpose(0, 1).contiguous()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        e0 = time.perf_counter()
        for _ in range(max(1, args.steps // 2)):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        de = (time.perf_counter() - e0) / max(1, args.steps // 2)
    sps = args.batch / dt
    epoch_s = N_TRAIN / sps + N_VAL / (args.batch / de)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"method": method_name, "amp": amp, "batch": args.batch, "ms_per_step": 1000 * dt,
            "train_samples_per_s": sps, "peak_mem_MiB": peak, "epoch_s": epoch_s,
            "projected_300_epochs_h": EPOCHS * epoch_s / 3600}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=120)
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=["tmkt", "sliding", "dvs"])
    p.add_argument("--amp", nargs="+", default=["none"], choices=["none", "bf16", "fp16"])
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, vgg_snn T={args.T} {args.size}x{args.size}")
    for amp in args.amp:
        for m in args.methods:
            r = measure(m, args, device, amp)
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                              for k, v in r.items()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
