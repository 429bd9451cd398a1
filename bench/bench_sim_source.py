"""Frames of a split through the `sim` dataset (cold frame-cache build) vs the simulator alone.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_sim_source.py --root ../shared/data

Goal (issue 19): building the frame cache of a `sim` split (base `nmnist`: MNIST pictures with
simulated N-MNIST recordings) runs within 1.5x of `simulate_batch` on the same pictures, for a
`max_per_class` subset, a full split and the whole MNIST training pool.

What each side includes (same pictures, seeds, T, binning; the frames are checked identical):
- dataset: `EventDataset(prep, split)` with a fresh frame-cache folder (a cold build): the
  `plan` of the recordings, simulation (`sim_workers` processes), `events_to_frames_many`,
  writing the float32 `.npy` rows, narrowing them to uint8, hashing the file and writing the
  sidecar. Not included: `prepare` (reading MNIST, making the split; printed apart).
- simulator: loading each picture (`load_static`), `simulate_batch` (one process, 256
  pictures per call, each picture's `picture_seed`) and `events_to_frames_many` of each batch
  into one reused array (nothing written to disk).
Both sides run after a warm-up (numba's kernel loaded, MNIST read), the simulator's
in-memory recordings (`tmkt.datasets.sim.MEMO`) cleared before each dataset build.

Cases: `subset` = 1,000 recordings, `max_per_class=100` (the issue's example; the train split,
since `max_per_class` limits training only; before, the case cut the val split, as
docs/simulator.md's figures did); `split` = the full val split (5,970); `pool` = the train
split with
`val_fraction=0`: the whole MNIST training pool (59,700), or `--pool-limit N` pictures of it
(`max_per_class = N // 10`). `--workers 1,2` times the dataset once per `sim_workers` value.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from tmkt.datasets import DataConfig, EventDataset, prepare
from tmkt.datasets.prepare import Prepared
from tmkt.datasets.sim import MEMO, picture_seed, sim_params
from tmkt.events.frames import events_to_frames_many
from tmkt.events.sim import simulate_batch

BATCH = 256


def case_config(case: str, args: argparse.Namespace, cache_dir: str, workers: int) -> DataConfig:
    """The data settings of one case (the issue's command: T=8, time binning, seed 42)."""
    options = {"base": "nmnist", "sim_workers": workers}
    kw: dict = dict(name="sim", root=args.root, cache_dir=cache_dir, T=args.T, seed=42,
                    binning="time", options=options)
    if case == "subset":
        kw["max_per_class"] = 100
    elif case == "pool":
        kw["val_fraction"] = 0.0
        if args.pool_limit:
            kw["max_per_class"] = max(1, args.pool_limit // 10)
    return DataConfig(**kw)


def split_of(case: str) -> str:
    """The split each case builds."""
    return "val" if case == "split" else "train"  # max_per_class limits the train split only


def dataset_pass(prep: Prepared, split: str) -> tuple[float, EventDataset]:
    """Seconds for a cold frame-cache build of `split` (the cache folder must be empty)."""
    MEMO.clear()
    t0 = time.perf_counter()
    ds = EventDataset(prep, split)
    dt = time.perf_counter() - t0
    assert ds.cache is not None and ds.cache.built, "the frame cache was not built cold"
    return dt, ds


def simulator_pass(prep: Prepared, ds: EventDataset, check: bool) -> tuple[float, bool]:
    """Seconds for load + `simulate_batch` + binning of the dataset's pictures, and whether the
    frames equal the dataset's cache rows (compared outside the timing)."""
    cfg = prep.cfg
    params = sim_params(cfg.options)
    seed = int(cfg.options.get("sim_seed", 0))
    pictures = [prep.static_by_ref[it.ref.split("/", 1)[1]] for it in ds.items]
    load = prep.sources.load_static
    buf = np.empty((BATCH, cfg.T, 2, *ds.hw), dtype=np.float32)
    total, same = 0.0, True
    for a in range(0, len(pictures), BATCH):
        part = pictures[a : a + BATCH]
        t0 = time.perf_counter()
        images = [np.asarray(load(p)) for p in part]
        seeds = [picture_seed(seed, p.ref) for p in part]
        events = simulate_batch(images, params, seeds=seeds)
        frames = buf[: len(part)]
        events_to_frames_many(
            events, tuple(params.sensor_size), cfg.T, size=ds.hw, binning=cfg.binning,
            norm=cfg.norm, out=frames,
        )
        total += time.perf_counter() - t0
        if check:
            same &= np.array_equal(ds.cache.rows(range(a, a + len(part))), frames)
    return total, same


def warm_up(prep: Prepared) -> None:
    """Load numba's kernel and touch the pictures once (one-off costs, on neither side)."""
    pics = prep.sources.static[:8]
    events = simulate_batch([prep.sources.load_static(p) for p in pics], seeds=0)
    events_to_frames_many(events, (34, 34), prep.cfg.T, binning=prep.cfg.binning)


def main() -> None:
    """Run the cases and print one line per side with the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="../shared/data")
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--cases", default="subset,split,pool")
    ap.add_argument("--pool-limit", type=int, default=0,
                    help="simulate N pictures of the training pool (max_per_class = N // 10)")
    ap.add_argument("--workers", default="1,2", help="sim_workers values for the dataset side")
    ap.add_argument("--repeats", type=int, default=2,
                    help="best of N alternating passes per side (the pool: 1)")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, T={args.T}")
    for case in args.cases.split(","):
        if case not in ("subset", "split", "pool"):
            raise SystemExit(f"--cases: unknown case {case!r} (subset, split, pool)")
        repeats = 1 if case == "pool" else args.repeats
        best_ds = {w: np.inf for w in workers}
        best_sim, same_all, n, t_prep = np.inf, True, 0, 0.0
        for _ in range(repeats):  # passes alternate: dataset (each sim_workers), simulator
            for w in workers:
                with tempfile.TemporaryDirectory() as cache_dir:
                    t0 = time.perf_counter()
                    prep = prepare(case_config(case, args, cache_dir, w))
                    t_prep = time.perf_counter() - t0
                    warm_up(prep)
                    t_ds, ds = dataset_pass(prep, split_of(case))
                    best_ds[w], n = min(best_ds[w], t_ds), len(ds)
                    if w == workers[-1]:
                        t_sim, same = simulator_pass(prep, ds, check=True)
                        best_sim, same_all = min(best_sim, t_sim), same_all and same
                    del ds
        for w in workers:
            print(
                f"{case:6s} {n:6d} recordings | dataset (sim_workers={w}) "
                f"{n / best_ds[w]:6.1f} frames/s ({best_ds[w]:6.1f} s) | simulator "
                f"{n / best_sim:6.1f} frames/s ({best_sim:6.1f} s) | dataset/simulator time "
                f"{best_ds[w] / best_sim:.2f}x | identical frames: {same_all}"
            )
        print(f"  (best of {repeats}; prepare {t_prep:.1f} s apart; load average now "
              f"{os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
