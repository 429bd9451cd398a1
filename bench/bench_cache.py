"""Cached epoch vs decoding from events: time one pass over a split both ways, print the ratio.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_cache.py --root ../shared/data

Goal (issue 3, item 7): a cached epoch loads >= 20x faster than decoding every recording,
measured on the `ds[i]` pass (every sample read once, as tensors). A DataLoader epoch (batch
120, shuffled, main process) is timed too: it adds the collate copy, the same for both ways,
so its ratio is lower. The cache build is a one-off cost, timed separately.
`--repeats` keeps the best pass of each kind.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tmkt.datasets import DataConfig, EventDataset, prepare


def loop_pass(ds: EventDataset) -> float:
    """Seconds to read every sample once by index."""
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return time.perf_counter() - t0


def loader_pass(ds: EventDataset, batch: int, seed: int) -> float:
    """Seconds for one shuffled DataLoader epoch (collated batches)."""
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    n = 0
    for x, _ in DataLoader(ds, batch_size=batch, shuffle=True, generator=g, num_workers=0):
        n += x.shape[0]
    assert n == len(ds)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run both kinds of pass both ways, print times and ratios."""
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
    ap.add_argument("--cache-dir", default=None, help="default: a fresh temp folder")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    size = (args.size, args.size) if args.size else None
    common = dict(name=args.name, root=args.root, T=args.T, size=size, binning=args.binning,
                  max_per_class=args.max_per_class)
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(DataConfig(cache=False, **common))
        raw = EventDataset(prep, args.split)
        prep.cfg = DataConfig(cache=True, cache_dir=args.cache_dir or tmp, **common)
        t0 = time.perf_counter()
        cached = EventDataset(prep, args.split)
        build = time.perf_counter() - t0
        res = {}
        for kind, fn in (("DataLoader", lambda d: loader_pass(d, args.batch, 0)),
                         ("ds[i] loop", loop_pass)):
            res[kind] = (min(fn(raw) for _ in range(args.repeats)),
                         min(fn(cached) for _ in range(args.repeats)))
    n = len(raw)
    print(f"dataset={args.name} split={args.split} samples={n} T={args.T} "
          f"frame={raw.in_shape} binning={args.binning} batch={args.batch}")
    print(f"cache build (once): {build:.3f} s (built now: {cached.cache.built})")
    for kind, (dec, hit) in res.items():
        print(f"{kind:>10}: decode {dec:.4f} s ({1e3 * dec / n:.3f} ms/sample) | cached "
              f"{hit:.4f} s ({1e3 * hit / n:.3f} ms/sample) | speed-up {dec / hit:.1f}x")
    dec, hit = res["ds[i] loop"]
    print(f"goal (cached load >= 20x faster, ds[i] pass): {'met' if dec / hit >= 20 else 'NOT met'}"
          "; the DataLoader pass adds collate (torch.stack of each batch), paid by both ways")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
