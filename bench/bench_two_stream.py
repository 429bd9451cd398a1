"""Cost of one two-stream training step relative to one single-stream step (goal: <= 2.0x).

Times a full step (method loss, backward, AdamW step) on synthetic batches for:
  dvs              single stream (the reference)
  tmkt/separate    two streams as two passes through the shared network (default, as He et al.)
  tmkt/concat      two streams as one interleaved batch, BN statistics per stream (the same
                   results as separate passes; `two_stream: auto` picks it on CUDA)
  sliding/separate He et al.'s baseline
The static stream is one random picture per sample repeated over T, as the static encoder gives.
Configurations are interleaved over repeats (alternating measurement); medians are reported.

    python bench/bench_two_stream.py --device cuda --model vgg_snn --size 48 --T 10 --batch 32
    python bench/bench_two_stream.py --device cpu --model cnn_small --size 34 --T 4 --batch 8 \
        --steps 3 --repeats 2        # smoke scale
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tmkt.allocator import CPU_ALLOCATORS, set_cpu_allocator
from tmkt.models import build_model
from tmkt.train.config import MethodConfig
from tmkt.train.evaluate import autocast_context
from tmkt.train.methods import Batch, build_method

VARIANTS = {
    "dvs": ("dvs", "separate"),
    "tmkt/separate": ("tmkt", "separate"),
    "tmkt/concat": ("tmkt", "concat"),
    "sliding/separate": ("sliding", "separate"),
}


def make_step(variant: str, args: argparse.Namespace, device: torch.device):
    """A closure running one optimisation step of `variant` on a fixed synthetic batch."""
    name, two_stream = VARIANTS[variant]
    torch.manual_seed(0)
    model = build_model(args.model, args.classes, in_shape=(2, args.size, args.size),
                        width=args.width)
    cfg = MethodConfig(name=name, two_stream=two_stream)
    method = build_method(cfg, model, args.T)
    method.to(device).train()
    if args.compile:
        method.model = torch.compile(model)
    opt = torch.optim.AdamW(method.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    shape = (args.batch, args.T, 2, args.size, args.size)
    batch = Batch(
        label=torch.randint(0, args.classes, (args.batch,), generator=g),
        events=(torch.rand(shape, generator=g) < 0.1).float(),
        static=torch.rand((args.batch, 1, *shape[2:]), generator=g).expand(shape).contiguous(),
    ).to(device)
    scaler = torch.amp.GradScaler(enabled=args.amp == "fp16")

    def step() -> None:
        with autocast_context(device, args.amp):
            loss, _ = method.loss(batch, 0.5)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--allocator", default="cache", choices=CPU_ALLOCATORS,
                   help="host allocator (train.cpu_allocator; the trainer's default: cache)")
    p.add_argument("--model", default="vgg_snn")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    set_cpu_allocator(args.allocator)
    if "dvs" not in args.variants:
        p.error("the single-stream reference 'dvs' must be among --variants")
    device = torch.device(args.device)
    steps = {v: make_step(v, args, device) for v in args.variants}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    sync(device)
    times: dict[str, list[float]] = {v: [] for v in steps}
    for r in range(args.repeats):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))  # alternate the order
        for v in order:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[v]()
            sync(device)
            times[v].append((time.perf_counter() - t0) / args.steps)
    ref = statistics.median(times["dvs"])
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "settings": {k: getattr(args, k) for k in
                     ("model", "width", "size", "T", "batch", "amp", "compile", "steps",
                      "repeats")},
        "ms_per_step": {v: 1000 * statistics.median(ts) for v, ts in times.items()},
        "ratio_vs_single": {v: statistics.median(ts) / ref for v, ts in times.items()},
        "goal": "two-stream step <= 2.0x single-stream step",
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"device {result['device']}  {result['settings']}")
    for v in steps:
        ratio = result["ratio_vs_single"][v]
        flag = "" if v == "dvs" else ("  (<= 2.0x: yes)" if ratio <= 2.0 else "  (<= 2.0x: NO)")
        print(f"  {v:18s} {result['ms_per_step'][v]:9.2f} ms/step  {ratio:5.2f}x{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
