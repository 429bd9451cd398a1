"""Cached epoch vs decoding from events: time epochs over a split both ways, print the ratios.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_cache.py --root ../shared/data

Goal (issue 3, item 7): a cached epoch loads >= 20x faster than decoding every recording.
Measured through `torch.utils.data.DataLoader` (batch 120, shuffled, main process), as the
trainer loads, with `collate_fn=tmkt.datasets.compact_collate`: the loader then calls the
dataset's `__getitems__` once per batch (cached: one read of the frame cache; decoding: the
recordings read one by one, then counted with `events_to_frames_many`). For reference it also
times the per-sample paths: the DataLoader with torch's default collate over `ds[i]` (what a
plain loader did before `__getitems__`; a dataset wrapper hides `__getitems__`) and a bare
`ds[i]` loop. `--paired` times the paired dataset (static pictures from the plane cache) too.
Cached variants: `auto` (the default `frames_dtype`: exact uint8 counts handed on) and `float32`
(widened on read). The main pass is the trainer's loader: `compact_collate`, which also keeps
each paired picture once ([B, 1, 1, H, W], expanded again after the move); `fast_collate`
(public, materialises the pictures over T and channels) is timed too. The `widened` pass also
converts each batch's integer frames to float32 in the loop, the work a CPU network then does.
The cache builds are one-off costs, timed separately. Passes alternate decode / cached and
`--repeats` keeps the best of each. `--allocator` sets the host allocator for the whole
process (tmkt.allocator; `tmkt train` runs with `cache`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from tmkt.allocator import CPU_ALLOCATORS, set_cpu_allocator
from tmkt.datasets import (
    DataConfig,
    EventDataset,
    PairedDataset,
    compact_collate,
    fast_collate,
    prepare,
)


class PerSample(Dataset):
    """Hides `__getitems__`, so the DataLoader fetches `ds[i]` one by one."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds[i]


def loop_pass(ds: Dataset) -> float:
    """Seconds to read every sample once by index."""
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return time.perf_counter() - t0


def loader_pass(ds: Dataset, batch: int, seed: int, collate: Callable | None,
                widen: bool = False) -> float:
    """Seconds for one shuffled DataLoader epoch (main process); `widen`: also convert each
    batch's integer frames to float32 there (what the network does on its device)."""
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    n = 0
    for b in DataLoader(ds, batch_size=batch, shuffle=True, generator=g, num_workers=0,
                        collate_fn=collate):
        if widen:
            b = [t.float() if not t.is_floating_point() and t.dim() > 1 else t for t in b]
        n += b[-1].shape[0]
    assert n == len(ds)
    return time.perf_counter() - t0


def compare(label: str, raw: Dataset, cached: dict[str, Dataset], batch: int, repeats: int,
            n: int) -> dict[str, float]:
    """Time the kinds of pass on the decoding and each cached dataset alternately; print them;
    return the DataLoader + compact_collate (the trainer's loader) ratio of each cached variant."""
    kinds = {
        "DataLoader + compact_collate": lambda d: loader_pass(d, batch, 0, compact_collate),
        "+ compact_collate, widened": lambda d: loader_pass(d, batch, 0, compact_collate,
                                                             widen=True),
        "DataLoader + fast_collate": lambda d: loader_pass(d, batch, 0, fast_collate),
        "DataLoader, per-sample": lambda d: loader_pass(PerSample(d), batch, 0, None),
        "ds[i] loop": loop_pass,
    }
    main: dict[str, float] = {}
    for kind, fn in kinds.items():
        dec = float("inf")
        hit = {name: float("inf") for name in cached}
        for _ in range(repeats):
            dec = min(dec, fn(raw))
            for name, ds in cached.items():
                hit[name] = min(hit[name], fn(ds))
        cells = " | ".join(
            f"cached {name} {1e3 * t / n:.4f} ms/sample, {dec / t:.1f}x" for name, t in hit.items()
        )
        print(f"  {label} {kind:>26}: decode {1e3 * dec / n:.3f} ms/sample | {cells}")
        if not main:
            main = {name: dec / t for name, t in hit.items()}
    return main


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the passes both ways, print times and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    ap.add_argument("--name", default="nmnist")
    ap.add_argument("--split", default="train", choices=["train", "val", "test"])
    ap.add_argument("--T", type=int, default=10)
    ap.add_argument("--size", type=int, default=None, help="square frame size (default native)")
    ap.add_argument("--binning", default="time")
    ap.add_argument("--batch", type=int, default=120)
    ap.add_argument("--max-per-class", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--paired", action="store_true", help="also time the paired dataset")
    ap.add_argument("--cache-dir", default=None, help="default: a fresh temp folder")
    ap.add_argument("--allocator", default="system", choices=CPU_ALLOCATORS,
                    help="host allocator of the process, both paths alike (the trainer: cache)")
    args = ap.parse_args(argv)
    set_cpu_allocator(args.allocator)
    torch.set_num_threads(1)
    size = (args.size, args.size) if args.size else None
    common = dict(name=args.name, root=args.root, T=args.T, size=size, binning=args.binning,
                  max_per_class=args.max_per_class)
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(DataConfig(cache=False, **common))
        raw = EventDataset(prep, args.split)
        cache_dir = args.cache_dir or tmp
        prep.cfg = DataConfig(cache=True, cache_dir=cache_dir, **common)
        t0 = time.perf_counter()
        cached = {"auto": EventDataset(prep, args.split)}
        build = time.perf_counter() - t0
        prep.cfg = DataConfig(cache=True, cache_dir=cache_dir, frames_dtype="float32", **common)
        cached["float32"] = EventDataset(prep, args.split)
        n = len(raw)
        print(f"dataset={args.name} split={args.split} samples={n} T={args.T} "
              f"frame={raw.in_shape} binning={args.binning} batch={args.batch} "
              f"allocator={args.allocator}")
        print(f"frame cache build (once): {build:.3f} s (built now: {cached['auto'].cache.built}, "
              f"stored as {cached['auto'].cache.dtype}; 'auto' hands on "
              f"{'uint8' if cached['auto'].narrow else 'float32'})")
        ratio = compare("events", raw, cached, args.batch, args.repeats, n)
        for name, r in ratio.items():
            print(f"goal (cached epoch >= 20x faster than decoding, the trainer's loader), "
                  f"frames_dtype {name}: {r:.1f}x, {'met' if r >= 20 else 'NOT met'}")
        if args.paired:
            paired_cached = {}
            for name in ("auto", "float32"):
                prep.cfg = DataConfig(cache=True, cache_dir=cache_dir, frames_dtype=name,
                                      **common)
                t0 = time.perf_counter()
                paired_cached[name] = PairedDataset(prep, args.split)
                planes = paired_cached[name].static.planes
                print(f"paired ({name}): frame + plane cache open/build: "
                      f"{time.perf_counter() - t0:.3f} s (planes built now: {planes.built}, "
                      f"{len(paired_cached[name].static)} pictures)")
            prep.cfg = DataConfig(cache=False, **common)
            paired_raw = PairedDataset(prep, args.split)
            compare("paired", paired_raw, paired_cached, args.batch, args.repeats, n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
