"""Where a two-stream step's time goes beyond two single-stream steps (torch.profiler).

Profiles `--steps` optimiser steps of `dvs` and of a two-stream variant (`--variant`, default
tmkt with separate passes) on the synthetic batches of `bench_two_stream.py` and prints, per op
(CPU) or per kernel (CUDA: self device time), the time per step of each and the excess of the
two-stream step over twice dvs, largest first.

    OMP_NUM_THREADS=2 .venv/bin/python bench/profile_two_stream.py            # cnn_small, T=8, B=32
    python bench/profile_two_stream.py --device cuda --model vgg_snn --size 48 --T 10 \
        --batch 120 --classes 101 --variant tmkt/concat
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_two_stream import VARIANTS, make_step  # noqa: E402

from tmkt.allocator import CPU_ALLOCATORS, set_cpu_allocator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--allocator", default="cache", choices=CPU_ALLOCATORS,
                   help="host allocator (train.cpu_allocator; the trainer's default: cache)")
    p.add_argument("--model", default="cnn_small")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--size", type=int, default=34)
    p.add_argument("--T", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", default="tmkt/separate",
                   choices=[v for v in VARIANTS if v != "dvs"])
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    args = p.parse_args(argv)
    set_cpu_allocator(args.allocator)
    args.compile = False
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    per_op: dict[str, dict[str, float]] = {}
    for variant in ("dvs", args.variant):
        step = make_step(variant, args, device)
        for _ in range(3):
            step()
        if cuda:
            torch.cuda.synchronize(device)
        with profile(activities=acts) as prof:
            for _ in range(args.steps):
                step()
            if cuda:
                torch.cuda.synchronize(device)
        events = prof.key_averages()
        if cuda:  # kernels, copies and memsets only (ops would count their kernels twice)
            events = [e for e in events if str(e.device_type).endswith("CUDA")]
        per_op[variant] = {
            e.key: (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3 / args.steps
            for e in events
        }
        per_op[variant] = {k: v for k, v in per_op[variant].items() if v > 0}
    dvs, two = per_op["dvs"], per_op[args.variant]
    what = "device" if cuda else "CPU"
    print(f"{what} ms per step: dvs {sum(dvs.values()):.1f}, "
          f"{args.variant} {sum(two.values()):.1f}")
    keys = sorted(set(dvs) | set(two), key=lambda k: -(two.get(k, 0) - 2 * dvs.get(k, 0)))
    shown = keys[: args.top] + [k for k in keys[-args.top:] if k not in keys[: args.top]]
    for k in shown:  # the largest excesses, then the largest savings (negative excess)
        d, t = dvs.get(k, 0.0), two.get(k, 0.0)
        print(f"{k[:64]:64s} dvs {d:8.2f}  two-stream {t:8.2f}  excess {t - 2 * d:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
