"""Benchmark: events -> (T, 2, H, W) frames, tmkt.events.frames vs tonic's ToFrame(n_time_bins=T).

Two workloads: every real N-MNIST file (many small recordings, per-call overhead matters) and one
large synthetic stream (throughput). For each it prints events/s of tmkt's `events_to_frames`
and tonic's `ToFrame` called once per recording, each result dropped as a dataset hands it on
("per file") or all results kept in a list ("kept": fresh memory to fault in for every frame),
and of `events_to_frames_many` over the whole list ("batched", as the frame cache builder calls
it), with the ratios to tonic in the same pattern, and checks that tmkt and tonic agree wherever
their bin edges coincide. All are timed alternately in one process (best of `--repeats`), under
one host allocator setting (`--allocator`, see tmkt.allocator).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frames.py                 # full run
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frames.py --files 20 --events 200000 --repeats 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tmkt.allocator import CPU_ALLOCATORS, set_cpu_allocator
from tmkt.events.frames import events_to_frames, events_to_frames_many
from tmkt.events.io import make_events, read_events

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "N-MNIST"


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` runs of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def synthetic_stream(n: int, sensor: tuple[int, int], seed: int = 0) -> np.ndarray:
    """n uniformly placed events with sorted timestamps over one second."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 1_000_000, n))
    return make_events(t, rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n),
                       rng.integers(0, 2, n))


def agree_with_tonic(events: np.ndarray, sensor: tuple[int, int], T: int, to_frame) -> bool:
    """Ours equals tonic's frames once tonic's floor-width tail is cut and a marker aligns edges."""
    t0 = int(events["t"][0])
    end = t0 + T * ((int(events["t"][-1]) - t0) // T)
    kept = events[events["t"] < end]
    marker = make_events(np.array([end]), [0], [0], [0])
    ours = events_to_frames(np.concatenate([kept, marker]), sensor, T)
    ours[T - 1, 0, 0, 0] -= 1
    return bool(np.array_equal(ours, to_frame(events.copy()).astype(np.float32)))


def run(label: str, recordings: list[np.ndarray], sensor: tuple[int, int], T: int,
        repeats: int) -> None:
    """Time tmkt (per file and batched) and tonic over ``recordings``; print the results."""
    import tonic.transforms

    to_frame = tonic.transforms.ToFrame(sensor_size=(*sensor, 2), n_time_bins=T)
    n_events = sum(len(ev) for ev in recordings)
    def each(fn: Callable[[np.ndarray], object]) -> None:
        for ev in recordings:  # each result dropped, as a dataset's __getitem__ hands it on
            fn(ev)

    fns = {
        "tmkt per file": lambda: each(lambda ev: events_to_frames(ev, sensor, T)),
        "tmkt kept": lambda: [events_to_frames(ev, sensor, T) for ev in recordings],
        "tmkt batched": lambda: events_to_frames_many(recordings, sensor, T),
        "tonic per file": lambda: each(to_frame),
        "tonic kept": lambda: [to_frame(ev) for ev in recordings],
    }
    events_to_frames(recordings[0], sensor, T)  # compile the kernel (or load it) untimed
    to_frame(recordings[0])
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):  # alternate, so load changes hit all three alike
        for name, fn in fns.items():
            best[name] = min(best[name], best_time(fn, 1))
    batched = events_to_frames_many(recordings[:50], sensor, T)
    same = all(np.array_equal(b, events_to_frames(ev, sensor, T))
               for b, ev in zip(batched, recordings[:50], strict=True))
    agree = all(agree_with_tonic(ev, sensor, T, to_frame) for ev in recordings[:50])
    rates = {name: n_events / t for name, t in best.items()}
    print(f"{label}: {len(recordings)} recording(s), {n_events} events, T={T}, sensor {sensor}")
    for name, rate in rates.items():
        peer = "tonic kept" if name == "tmkt kept" else "tonic per file"
        ratio = "" if name.startswith("tonic") else f"  {rate / rates[peer]:5.1f}x {peer}"
        print(f"  {name:15s} {rate / 1e6:9.2f} M events/s ({best[name]:.4f} s){ratio}")
    print(f"  batched == per file: {same}; equal to tonic where edges coincide: {agree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="N-MNIST root")
    parser.add_argument("--files", type=int, default=750, help="N-MNIST files to use")
    parser.add_argument("--events", type=int, default=10_000_000, help="synthetic stream size")
    parser.add_argument("--T", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--allocator", default="system", choices=CPU_ALLOCATORS,
                        help="host allocator of the process, for tmkt and tonic alike "
                             "(tmkt's trainer sets cache)")
    args = parser.parse_args()
    set_cpu_allocator(args.allocator)
    print(f"allocator={args.allocator}")

    files = sorted(args.data.glob("*/*/*.bin"))[: args.files]
    if not files:
        raise SystemExit(f"no N-MNIST .bin files under {args.data}")
    recordings = [read_events(f).events for f in files]
    run("N-MNIST files", recordings, (34, 34), args.T, args.repeats)
    run("synthetic stream", [synthetic_stream(args.events, (128, 128))], (128, 128), args.T,
        args.repeats)


if __name__ == "__main__":
    main()
