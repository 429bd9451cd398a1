"""Benchmark: events -> (T, 2, H, W) frames, tmkt.events.frames vs tonic's ToFrame(n_time_bins=T).

Two workloads: every real N-MNIST file (many small recordings, per-call overhead matters) and one
large synthetic stream (throughput). For each it prints events/s of tmkt's `events_to_frames`
and tonic's `ToFrame` called once per recording, each result dropped as a dataset hands it on
("per file") or all results kept in a list ("kept": fresh memory to fault in for every frame),
and of `events_to_frames_many` over the whole list ("batched", as the frame cache builder calls
it), with the ratios to tonic in the same pattern, and checks that tmkt and tonic agree wherever
their bin edges coincide. All are timed alternately in one process (best of `--repeats`), under
one host allocator setting (`--allocator`, see tmkt.allocator).

Then downsampling at non-integer ratios (tonic's ToFrame does not resize): area-weighted frames
against the floor map tmkt used before (every pixel to cell floor(x * W_out / W), counted by the
compiled loop integer ratios still run), per file and batched, with the time ratio new / old:
the N-Caltech101 fixture at 240x180 -> 48x48, a real 128x128 window of the AEDAT4 fixture and
synthetic 128x128 recordings (CIFAR10-DVS's sensor) -> 48x48, synthetic 240x180 -> 48x48.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frames.py                 # full run
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frames.py --files 20 --events 200000 --repeats 1
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frames.py --only resize   # downsampling only
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import tmkt.events.frames as frames_mod
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


@contextlib.contextmanager
def floor_map() -> Iterator[None]:
    """Inside: tmkt's frames as before area weights (every pixel to cell floor(x W_out / W),
    counted straight into the output by the compiled loop integer ratios still run)."""
    real = frames_mod._plan

    def floor_plan(sensor: tuple[int, int], out_hw: tuple[int, int]) -> frames_mod._Plan:
        (width, height), (h_out, w_out) = sensor, out_hw
        rows, cols = np.arange(height) * h_out // height, np.arange(width) * w_out // width
        for m in (rows, cols):
            m.flags.writeable = False
        return real(sensor, out_hw)._replace(
            grid=out_hw, rows=rows, cols=cols, resize=out_hw != (height, width), exact=True)

    frames_mod._plan = functools.lru_cache(maxsize=8)(floor_plan)
    try:
        yield
    finally:
        frames_mod._plan = real


def run_resize(label: str, recordings: list[np.ndarray], sensor: tuple[int, int],
               size: tuple[int, int], T: int, repeats: int, chunk: int = 5) -> None:
    """Time area-weighted downsampling against the old floor map, per file and batched.

    Short timed units (one recording, or ``chunk`` recordings batched), old and new
    alternately, each unit's best of ``repeats`` summed: robust on a shared, busy machine.
    """
    per_file = [lambda ev=ev: events_to_frames(ev, sensor, T, size=size) for ev in recordings]
    batched = [lambda part=recordings[i : i + chunk]: events_to_frames_many(part, sensor, T,
                                                                            size=size)
               for i in range(0, len(recordings), chunk)]
    units = {"per file": per_file, "batched": batched}
    best = {(name, old): np.full(len(fns), np.inf) for name, fns in units.items()
            for old in (False, True)}
    for old in (False, True):  # compile (or load) both untimed
        with floor_map() if old else contextlib.nullcontext():
            events_to_frames(recordings[0], sensor, T, size=size)
    for _ in range(repeats):
        for name, fns in units.items():
            for k, fn in enumerate(fns):
                for old in (True, False):  # alternate, so load changes hit old and new alike
                    with floor_map() if old else contextlib.nullcontext():
                        t = best_time(fn, 1)
                    best[name, old][k] = min(best[name, old][k], t)
    with floor_map():
        floor = events_to_frames(recordings[0], sensor, T, size=size)
    area = events_to_frames(recordings[0], sensor, T, size=size)
    n_events = sum(len(ev) for ev in recordings)
    print(f"{label}: {len(recordings)} recording(s), {n_events} events, T={T}, "
          f"{sensor[0]}x{sensor[1]} -> {size[1]}x{size[0]}")
    for name in units:
        new, old = best[name, False].sum(), best[name, True].sum()
        print(f"  {name:9s} area {n_events / new / 1e6:7.2f} M events/s ({new:.4f} s), floor map "
              f"{n_events / old / 1e6:7.2f} ({old:.4f} s): area / floor time {new / old:.2f}x")
    areas = _cell_areas(sensor, size)
    print(f"  first recording: {len(recordings[0])} events, totals area "
          f"{area.sum(dtype=np.float64):.3f}, floor map {floor.sum():.0f}; floor map cells cover "
          f"{areas.min()}..{areas.max()} source pixels")


def _cell_areas(sensor: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Source pixels per target cell under the old floor map (unequal at non-integer ratios)."""
    (width, height), (h_out, w_out) = sensor, size
    rows = np.bincount(np.arange(height) * h_out // height, minlength=h_out)
    cols = np.bincount(np.arange(width) * w_out // width, minlength=w_out)
    return np.outer(rows, cols)


def resize_workloads(fixtures: Path, n_synthetic: int, events: int) -> list[tuple]:
    """(label, recordings, sensor, size) of the downsampling comparison."""
    caltech = read_events(fixtures / "ncaltech101_faces_easy_0001.bin",
                          sensor_size=(240, 180)).events
    aedat, _ = read_events(fixtures / "sample.aedat4")
    x, y = aedat["x"].astype(np.int64) - 96, aedat["y"].astype(np.int64) - 56
    keep = (x >= 0) & (x < 128) & (y >= 0) & (y < 128)
    window = make_events(aedat["t"][keep], x[keep], y[keep], aedat["p"][keep])
    return [
        ("N-Caltech101 fixture x20", [caltech] * 20, (240, 180), (48, 48)),
        ("AEDAT4 128x128 window x20", [window] * 20, (128, 128), (48, 48)),
        (f"synthetic {n_synthetic} x {events}", [synthetic_stream(events, (128, 128), s)
                                                for s in range(n_synthetic)], (128, 128), (48, 48)),
        (f"synthetic {n_synthetic} x {events}", [synthetic_stream(events, (240, 180), s)
                                                for s in range(n_synthetic)], (240, 180), (48, 48)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="N-MNIST root")
    parser.add_argument("--files", type=int, default=750, help="N-MNIST files to use")
    parser.add_argument("--events", type=int, default=10_000_000, help="synthetic stream size")
    parser.add_argument("--T", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--resize-events", type=int, default=100_000,
                        help="events of each synthetic downsampling recording")
    parser.add_argument("--resize-files", type=int, default=20,
                        help="synthetic downsampling recordings per sensor")
    parser.add_argument("--resize-repeats", type=int, default=30,
                        help="best of this many runs of each unit in the downsampling comparison")
    parser.add_argument("--only", choices=("tonic", "resize"), default=None,
                        help="run only the comparison with tonic or only the downsampling one")
    parser.add_argument("--allocator", default="system", choices=CPU_ALLOCATORS,
                        help="host allocator of the process, for tmkt and tonic alike "
                             "(tmkt's trainer sets cache)")
    args = parser.parse_args()
    set_cpu_allocator(args.allocator)
    print(f"allocator={args.allocator}")

    if args.only != "resize":
        files = sorted(args.data.glob("*/*/*.bin"))[: args.files]
        if not files:
            raise SystemExit(f"no N-MNIST .bin files under {args.data}")
        recordings = [read_events(f).events for f in files]
        run("N-MNIST files", recordings, (34, 34), args.T, args.repeats)
        run("synthetic stream", [synthetic_stream(args.events, (128, 128))], (128, 128), args.T,
            args.repeats)
    if args.only != "tonic":
        fixtures = args.data.parent / "fixtures"
        for label, recs, sensor, size in resize_workloads(fixtures, args.resize_files,
                                                          args.resize_events):
            run_resize(label, recs, sensor, size, args.T, args.resize_repeats)


if __name__ == "__main__":
    main()
