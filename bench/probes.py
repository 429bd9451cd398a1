"""Small measurements quoted in docs/ (sessions of 2026-11-22 and -23), one subcommand each.

    OMP_NUM_THREADS=2 .venv/bin/python bench/probes.py faults [--allocator system|cache]
        [--variants dvs|tmkt/separate]
    OMP_NUM_THREADS=2 .venv/bin/python bench/probes.py cka
    OMP_NUM_THREADS=2 .venv/bin/python bench/probes.py pool --model cnn_small|vgg_snn
    OMP_NUM_THREADS=2 .venv/bin/python bench/probes.py bn
    OMP_NUM_THREADS=2 .venv/bin/python bench/probes.py convlayout
    OMP_NUM_THREADS=2 .venv/bin/python bench/probes.py convalgo
    OMP_NUM_THREADS=2 .venv/bin/python bench/probes.py twopass
    OMP_NUM_THREADS=1 .venv/bin/python bench/probes.py gather [--allocator system|cache]
    OMP_NUM_THREADS=1 .venv/bin/python bench/probes.py kernelcall

faults: per-step wall, system time and minor page faults of the dvs and tmkt steps of
bench_two_stream (cnn_small, T=8, B=32), alternated in one process. cka: fwd+bwd of the domain
loss on [8, 32, 8192] features. pool: dvs-style step with SeqAvgPool2x2 vs aten's AvgPool2d,
alternated. bn: the three BN backward calls of a cnn_small dvs step, timed inside the step.
convlayout: conv forward + both backward passes per vgg_snn layer shape, NCHW vs channels_last.
convalgo: conv forward, and forward + input and weight gradients, per vgg_snn / cnn_small layer
shape, torch's default (oneDNN) vs NNPACK's Winograd (tmkt.snn.conv), with each one's largest
error against float64 relative to the largest output. twopass: the floor of any two-stream
step, a cnn_small step (T=8, B=32) of one plain pass vs two plain passes (separate, or one
concatenated batch), no mixing, CKA or heads, alternated, medians.
gather: shuffled 120-row batch reads of a float32 vs a uint8 cache (take, take + astype, the
cache's compiled gather). kernelcall: one call of the frames kernel on 1 event and on one
N-MNIST file.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_two_stream import make_step  # noqa: E402

from tmkt.allocator import CPU_ALLOCATORS, set_cpu_allocator  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def best_ms(fn: Callable[[], object], n: int, warm: int = 2, rounds: int = 1) -> float:
    """Best over `rounds` of the mean ms per call of `n` calls (after `warm` calls)."""
    for _ in range(warm):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n * 1e3)
    return best


def step_args(model: str) -> argparse.Namespace:
    small = model == "cnn_small"
    return argparse.Namespace(model=model, width=1.0, size=34 if small else 48,
                              T=8 if small else 10, batch=32 if small else 16, classes=10,
                              compile=False, amp="none")


def faults(args: argparse.Namespace) -> None:
    steps = {v: make_step(v, step_args("cnn_small"), torch.device("cpu"))
             for v in args.variants}
    for st in steps.values():
        for _ in range(3):
            st()
    for r in range(4):
        for v in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(10):
                steps[v]()
            r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            sys_ms = (r1.ru_stime - r0.ru_stime) * 100
            print(f"{v:14s} {(t1 - t0) * 100:6.1f} ms/step  sys {sys_ms:6.1f} ms/step  "
                  f"minor faults/step {(r1.ru_minflt - r0.ru_minflt) / 10:8.0f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def cka(args: argparse.Namespace) -> None:
    from tmkt.transfer.losses import DomainLoss

    g = torch.Generator().manual_seed(0)
    fa = torch.randn(8, 32, 8192, generator=g, requires_grad=True)
    fb = torch.randn(8, 32, 8192, generator=g, requires_grad=True)
    dl = DomainLoss(8)

    def run() -> None:
        loss, _ = dl(fa, fb)
        loss.backward()

    print(f"domain loss fwd+bwd [8, 32, 8192]: {best_ms(run, 20, 3):.1f} ms")


def pool(args: argparse.Namespace) -> None:
    from torch import nn

    from tmkt.snn.layers import SeqAvgPool2x2, SeqToANN

    steps = {}
    for name in ("SeqAvgPool2x2", "AvgPool2d"):
        step = make_step("dvs", step_args(args.model), torch.device("cpu"))
        if name == "AvgPool2d":
            method = next(c.cell_contents for c in step.__closure__
                          if hasattr(getattr(c.cell_contents, "model", None), "layers"))
            layers = method.model.layers
            for i, layer in enumerate(layers):
                if isinstance(layer, SeqAvgPool2x2):
                    layers[i] = SeqToANN(nn.AvgPool2d(2))
        steps[name] = step
    n = 5 if args.model == "cnn_small" else 1
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(4):
        for k in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            times[k].append(best_ms(steps[k], n, warm=2 if r == 0 else 0))
    for k, v in times.items():
        print(f"{args.model} dvs step with {k:14s} median {statistics.median(v):8.1f} ms")


def bn(args: argparse.Namespace) -> None:
    import tmkt.snn.fused as fused

    orig, log = fused._bn_backward, []

    def timed(*a):
        t0 = time.perf_counter()
        out = orig(*a)
        log.append((tuple(a[1].shape), (time.perf_counter() - t0) * 1e3))
        return out

    fused._bn_backward = timed
    step = make_step("dvs", step_args("cnn_small"), torch.device("cpu"))
    for _ in range(4):
        step()
    for shape, ms in log[-3:]:
        print(f"BN backward {shape}: {ms:.1f} ms")
    print(f"per step: {sum(ms for _, ms in log[-3:]):.1f} ms")


def convlayout(args: argparse.Namespace) -> None:
    import torch.nn.functional as F

    for n, cin, cout, hw in [(160, 64, 128, 48), (160, 128, 256, 24), (160, 256, 256, 24),
                             (160, 256, 512, 12), (160, 512, 512, 12), (160, 512, 512, 6)]:
        res = []
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = (torch.rand(n, cin, hw, hw) < 0.2).float().contiguous(memory_format=fmt)
            x.requires_grad_()
            w = torch.randn(cout, cin, 3, 3).contiguous(memory_format=fmt).requires_grad_()
            g = torch.randn(n, cout, hw, hw).contiguous(memory_format=fmt)
            res.append(best_ms(
                lambda x=x, w=w, g=g: torch.autograd.grad(F.conv2d(x, w, padding=1), (x, w), g),
                5))
        print(f"{(n, cin, cout, hw)}  NCHW {res[0]:7.0f} ms  channels_last {res[1]:7.0f} ms")


def _convalgo_layer(n: int, cin: int, cout: int, hw: int) -> str:
    """One row of `convalgo`: default vs Winograd timings and errors for one layer shape."""
    import torch.nn.functional as F

    from tmkt.snn.conv import winograd_conv2d

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    x = (torch.rand(n, cin, hw, hw) < 0.2).float().requires_grad_()
    g = torch.randn(n, cout, hw, hw)
    y64 = F.conv2d(x[:4].detach().double(), conv.weight.detach().double(), padding=1)

    def default(inp: torch.Tensor) -> torch.Tensor:
        return F.conv2d(inp, conv.weight, padding=1)

    def winograd(inp: torch.Tensor) -> torch.Tensor:
        return winograd_conv2d(inp, conv)

    res = []
    for run in (default, winograd):
        fwd = best_ms(lambda run=run: run(x.detach()), 3)
        both = best_ms(lambda run=run: torch.autograd.grad(run(x), (x, conv.weight), g), 3)
        err = (run(x[:4].detach()).double() - y64).abs().max().item()
        res.append((fwd, both, err / y64.abs().max().item()))
    (f0, b0, e0), (f1, b1, e1) = res
    return (f"{(n, cin, cout, hw)}  fwd {f0:6.0f} -> {f1:6.0f} ms ({f0 / f1:.2f}x)  "
            f"fwd+bwd {b0:6.0f} -> {b1:6.0f} ms ({b0 / b1:.2f}x)  rel. error {e0:.1e} -> "
            f"{e1:.1e}")


def convalgo(args: argparse.Namespace) -> None:
    from tmkt.snn.conv import nnpack_available

    assert nnpack_available(), "torch built without NNPACK"
    for shape in [(160, 64, 128, 48), (160, 128, 256, 24), (160, 256, 256, 24),
                  (160, 256, 512, 12), (160, 512, 512, 12), (160, 512, 512, 6),
                  (160, 64, 64, 48), (256, 32, 64, 17), (256, 64, 128, 8), (256, 2, 32, 34),
                  (160, 128, 128, 12), (160, 128, 128, 24), (256, 128, 128, 8),
                  (256, 128, 256, 8), (64, 128, 128, 32)]:
        print(_convalgo_layer(*shape), flush=True)


def twopass(args: argparse.Namespace) -> None:
    from tmkt.models import build_model
    from tmkt.train.config import MethodConfig
    from tmkt.train.methods import build_method, time_first

    T, B, K = 8, 32, 10
    g = torch.Generator().manual_seed(1)
    shape = (B, T, 2, 34, 34)
    ev = (torch.rand(shape, generator=g) < 0.1).float()
    st = torch.rand((B, 1, 2, 34, 34), generator=g).expand(shape)
    y = torch.randint(0, K, (B,), generator=g)

    def setup():
        torch.manual_seed(0)
        method = build_method(MethodConfig(name="dvs"), build_model("cnn_small", K, (2, 34, 34)),
                              T).train()
        return method, torch.optim.AdamW(method.parameters(), lr=1e-3)

    def one(m, opt):  # the single-stream (dvs) step
        loss = m.tet(m.model(time_first(ev)).logits_evt, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def separate(m, opt):  # two plain passes: no mixing, CKA or heads
        o1, o2 = m.model(time_first(ev)), m.model(time_first(st))
        loss = m.tet(o1.logits_evt, y) + m.tet(o2.logits_src, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def concat(m, opt):  # the same as one batch of 2B (BN statistics over both)
        o = m.model(torch.cat([time_first(st), time_first(ev)], 1))
        loss = m.tet(o.logits_evt[:, B:], y) + m.tet(o.logits_src[:, :B], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    runs = {"one": (setup(), one), "separate": (setup(), separate), "concat": (setup(), concat)}
    for (m, opt), fn in runs.values():
        for _ in range(3):
            fn(m, opt)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(10):
        for k in list(runs) if r % 2 == 0 else list(reversed(runs)):
            (m, opt), fn = runs[k]
            t0 = time.perf_counter()
            for _ in range(3):
                fn(m, opt)
            times[k].append((time.perf_counter() - t0) / 3)
    ref = statistics.median(times["one"])
    for k in runs:
        med = statistics.median(times[k])
        print(f"{k:9s} {1e3 * med:7.1f} ms/step  {med / ref:.3f}x")


def gather(args: argparse.Namespace) -> None:
    from tmkt.datasets.cache import _gather_kernel

    rows, width = 629, 10 * 2 * 34 * 34
    rng = np.random.default_rng(0)
    u8 = rng.poisson(0.3, (rows, width)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/u8.npy", u8)
        np.save(f"{tmp}/f32.npy", u8.astype(np.float32))
        u8m = np.load(f"{tmp}/u8.npy", mmap_mode="r").view(np.ndarray)
        f32m = np.load(f"{tmp}/f32.npy", mmap_mode="r").view(np.ndarray)
        perm = rng.permutation(rows)
        batches = [perm[i : i + 120] for i in range(0, rows, 120)]
        kernel = _gather_kernel()

        def fused() -> None:
            for ix in batches:
                kernel(u8m, ix, np.empty((len(ix), width), np.float32))

        ways = {"float32 take": lambda: [np.take(f32m, ix, axis=0) for ix in batches],
                "uint8 take + astype": lambda: [np.take(u8m, ix, axis=0).astype(np.float32)
                                                for ix in batches],
                "uint8 compiled gather": fused}
        for name, fn in ways.items():
            print(f"{name:22s} {best_ms(fn, 1, rounds=7) * 1e3 / rows:6.1f} us/sample")


def kernelcall(args: argparse.Namespace) -> None:
    from tmkt.events import frames
    from tmkt.events.io import read_events

    ev = read_events(sorted((DATA / "N-MNIST" / "Train" / "0").glob("*.bin"))[0]).events
    frames.events_to_frames(ev, (34, 34), 10)
    k = frames._kernel()
    out, rows = np.empty(10 * 2 * 34 * 34, np.float32), np.zeros(34, np.int64)
    one = ev[:1].copy()
    for name, e in (("1 event", one), (f"{len(ev)} events", ev)):
        ms = best_ms(lambda e=e: k(e, 10, False, 34, 34, rows, rows, False, 34, 34 * 34, out),
                     5000, rounds=3)
        print(f"frames kernel call, {name}: {ms * 1e3:.1f} us")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("probe", choices=["faults", "cka", "pool", "bn", "convlayout", "convalgo",
                                     "twopass", "gather", "kernelcall"])
    p.add_argument("--allocator", default="cache", choices=CPU_ALLOCATORS)
    p.add_argument("--model", default="cnn_small", choices=["cnn_small", "vgg_snn"])
    p.add_argument("--variants", nargs="+", default=["dvs", "tmkt/separate"],
                   choices=["dvs", "tmkt/separate"], help="faults: the steps to alternate "
                   "(one alone = that step in its own process)")
    args = p.parse_args(argv)
    set_cpu_allocator(args.allocator)
    globals()[args.probe](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
