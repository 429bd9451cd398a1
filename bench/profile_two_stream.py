"""Where a two-stream step's time goes beyond two single-stream steps (torch.profiler, CPU).

Profiles `--steps` optimiser steps of `dvs` and of `tmkt` (separate passes) on the synthetic
batches of `bench_two_stream.py` and prints, per op, the self CPU time per step of each and the
excess of tmkt over twice dvs, largest first.

    OMP_NUM_THREADS=2 .venv/bin/python bench/profile_two_stream.py            # cnn_small, T=8, B=32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_two_stream import make_step  # noqa: E402

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
    args = p.parse_args(argv)
    set_cpu_allocator(args.allocator)
    args.compile, args.amp = False, "none"
    per_op: dict[str, dict[str, float]] = {}
    for variant in ("dvs", "tmkt/separate"):
        step = make_step(variant, args, torch.device("cpu"))
        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        per_op[variant] = {e.key: e.self_cpu_time_total / 1e3 / args.steps
                           for e in prof.key_averages()}
    dvs, two = per_op["dvs"], per_op["tmkt/separate"]
    print(f"ms per step: dvs {sum(dvs.values()):.1f}, tmkt {sum(two.values()):.1f}")
    keys = sorted(set(dvs) | set(two), key=lambda k: -(two.get(k, 0) - 2 * dvs.get(k, 0)))
    for k in keys[: args.top]:
        d, t = dvs.get(k, 0.0), two.get(k, 0.0)
        print(f"{k:52s} dvs {d:8.2f}  tmkt {t:8.2f}  excess {t - 2 * d:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
