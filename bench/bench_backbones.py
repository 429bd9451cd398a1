"""Training-step throughput and peak memory: tmkt backbones vs the same nets on spikingjelly 2.0.

Each measurement runs in a fresh subprocess (honest peak RSS on CPU; max_memory_allocated on
CUDA), alternating tmkt, spikingjelly, tmkt, spikingjelly, ... Medians and ratios are printed as
a Markdown table. spikingjelly is a test/bench-only dependency.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/bench_backbones.py --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

# name -> (T, (C, H, W), batch, classes)
SETTINGS: dict[str, tuple[int, tuple[int, int, int], int, int]] = {
    "vgg_snn": (10, (2, 48, 48), 16, 101),
    "cnn_small": (8, (2, 34, 34), 32, 10),
}
IMPLS = ("tmkt", "spikingjelly")
ALLOCATOR_SETTINGS = ("system", "cache", "shipped")


def allocator_for(setting: str, impl: str) -> str:
    """The host allocator mode (tmkt.allocator) a worker of `impl` runs with."""
    if setting == "shipped":
        return "cache" if impl == "tmkt" else "system"
    return setting


@dataclass
class Result:
    impl: str
    samples_per_s: float
    peak_mb: float


def build_sj_twin(name: str, num_classes: int, in_shape: tuple[int, int, int]):
    """The same architecture as tmkt's `name` on spikingjelly's multi-step LIFNode."""
    import torch
    from spikingjelly.activation_based import layer, neuron, surrogate
    from torch import nn

    from tmkt.models.cnn import CNN_SMALL_CFG
    from tmkt.models.vgg import POOL, VGG_SNN_CFG

    spec = {"vgg_snn": VGG_SNN_CFG, "cnn_small": CNN_SMALL_CFG}[name]
    c, h, w = in_shape
    mods: list[nn.Module] = []
    for item in spec:
        if item == POOL:
            mods.append(layer.SeqToANNContainer(nn.AvgPool2d(2)))
            h, w = h // 2, w // 2
        else:
            mods.append(
                layer.SeqToANNContainer(
                    nn.Conv2d(c, int(item), 3, 1, 1, bias=False), nn.BatchNorm2d(int(item))
                )
            )
            mods.append(
                neuron.LIFNode(
                    tau=2.0, decay_input=True, v_threshold=0.5, v_reset=0.0, detach_reset=True,
                    surrogate_function=surrogate.PiecewiseQuadratic(alpha=2.0), step_mode="m",
                )
            )
            c = int(item)
    last_lif = max(i for i, m in enumerate(mods) if isinstance(m, neuron.LIFNode))
    mods[last_lif].store_v_seq = True
    feat = c * h * w

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(*mods)
            self.head_src = nn.Linear(feat, num_classes)
            self.head_evt = nn.Linear(feat, num_classes)

        def forward(self, x: torch.Tensor):
            z = self.layers(x).flatten(2)
            mem = self.layers[last_lif].v_seq.flatten(2)
            return self.head_src(z), self.head_evt(z), mem, z

    return Twin()


def parse_neuron(spec: str) -> dict[str, object]:
    """'key=value,key=value' -> build_model keywords for tmkt (numbers and booleans parsed)."""
    out: dict[str, object] = {}
    for item in filter(None, spec.split(",")):
        key, _, val = item.partition("=")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def worker(args: argparse.Namespace) -> None:
    """One measurement: build, warm up, time `steps` training steps, print a JSON line."""
    import resource

    import torch

    from tmkt.allocator import set_cpu_allocator

    set_cpu_allocator(allocator_for(args.allocator, args.impl))
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    T, shape, batch, classes = SETTINGS[args.model]
    batch = args.batch or batch
    T = args.T or T
    torch.manual_seed(0)
    if args.impl == "tmkt":
        from tmkt.models import build_model

        model = build_model(args.model, classes, shape, **parse_neuron(args.neuron))
        reset = None
    else:
        from spikingjelly.activation_based import functional

        model = build_sj_twin(args.model, classes, shape)
        reset = functional.reset_net
    model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x = (torch.rand(T, batch, *shape, device=dev) < 0.2).float()
    y = torch.randint(0, classes, (batch,), device=dev)
    ce = torch.nn.functional.cross_entropy

    def step() -> None:
        out = model(x)
        loss = ce(out[0].mean(0), y) + ce(out[1].mean(0), y) + 1e-3 * out[2].pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if reset is not None:
            reset(model)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    dt = time.perf_counter() - t0
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"impl": args.impl, "sps": args.steps * batch / dt, "peak_mb": peak_mb,
                      "sys_s": ru.ru_stime, "minflt": ru.ru_minflt}))


def measure(args: argparse.Namespace, model: str, impl: str) -> Result:
    """Run one worker subprocess and parse its result."""
    cmd = [
        sys.executable, os.path.abspath(__file__), "--worker", "--impl", impl, "--model", model,
        "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads), "--batch", str(args.batch or 0), "--T", str(args.T or 0),
        "--neuron", args.neuron, "--allocator", args.allocator,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl}/{model} worker failed:\n{proc.stderr[-3000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    return Result(impl, rec["sps"], rec["peak_mb"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", default="vgg_snn,cnn_small", help="comma-separated")
    p.add_argument("--rounds", type=int, default=3, help="alternating A/B pairs per model")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per measurement")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    p.add_argument("--batch", type=int, default=0, help="override the batch size (0 = default)")
    p.add_argument("--T", type=int, default=0, help="override T (0 = default)")
    p.add_argument("--neuron", default="", help="tmkt neuron/block options, e.g. conv_time=fold")
    p.add_argument("--allocator", default="system", choices=ALLOCATOR_SETTINGS,
                   help="host allocator: system / cache for both impls, or shipped = "
                        "tmkt with its trainer's default (cache), spikingjelly with the C "
                        "library's (system)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", choices=IMPLS, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in SETTINGS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; valid: {sorted(SETTINGS)}")
    print(f"device={args.device} threads={args.threads} steps={args.steps} warmup={args.warmup} "
          f"rounds={args.rounds} allocator={args.allocator}")
    print("| model | T | batch | tmkt samples/s | sj samples/s | speed ratio | "
          "tmkt peak MB | sj peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in models:
        res: dict[str, list[Result]] = {i: [] for i in IMPLS}
        for _ in range(args.rounds):
            for impl in IMPLS:  # A, B, A, B, ...
                res[impl].append(measure(args, model, impl))
        sps = {i: statistics.median(r.samples_per_s for r in res[i]) for i in IMPLS}
        mem = {i: statistics.median(r.peak_mb for r in res[i]) for i in IMPLS}
        T, _, batch, _ = SETTINGS[model]
        print(
            f"| {model} | {args.T or T} | {args.batch or batch} | {sps['tmkt']:.2f} | "
            f"{sps['spikingjelly']:.2f} | {sps['tmkt'] / sps['spikingjelly']:.2f}x | "
            f"{mem['tmkt']:.0f} | {mem['spikingjelly']:.0f} | "
            f"{mem['tmkt'] / mem['spikingjelly']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
