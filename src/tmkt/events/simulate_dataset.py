"""`tmkt simulate`: a folder of pictures -> a simulated event dataset of `.bin` recordings.

    tmkt simulate --preset ncaltech101 --images /data/caltech101 --out /data/sim/Caltech101
    tmkt simulate --preset nmnist --images pictures/ --out sim/ --seed 3 --workers 2 \
        --set threshold_on=0.3 --on-error stop

Reads `<images>/<class>/*.{jpg,jpeg,png}` (a Caltech101-style folder; `<images>` may also be
the parent of `101_ObjectCategories`) and writes `<out>/<class>/<stem>.bin` in the 5-byte
N-MNIST / N-Caltech101 format (x 8 bits, y 8 bits, polarity 1 bit, timestamp 23 bits in µs;
the same layout below `Caltech101/` or `Train/` that those datasets use), one recording per
picture, with `tmkt.events.sim` (`--preset`, `--set field=value` overrides).

- Reproducible: picture `<class>/<file>` is simulated with the seed
  `picture_seed(seed, "<class>/<file>")` (`tmkt.datasets.sim`, the seed `data.static_encoding:
  sim` uses for the same picture), so the bytes do not depend on `--workers` or the order.
- Resumable: each file is written to `<stem>.bin.part` and renamed (`os.replace`) when
  complete; a rerun skips the `.bin` files already there and removes stale `.part` files.
- One simulation per folder: `<out>/tmkt_simulate.json` records the preset, the parameters and
  the seed; a folder holding another simulation (or other files) is refused.
- Bad pictures: `--on-error skip` (default) names each unreadable picture on stderr and counts
  them at the end; `--on-error stop` stops at the first (exit 2, naming it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tmkt.events.sim import PRESETS, SimParams
from tmkt.static.io import read_rgb as load_picture  # (H, W, 3) uint8 RGB

MANIFEST = "tmkt_simulate.json"
MANIFEST_VERSION = 1
PART = ".part"
SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_T = 2**23  # timestamps must fit 23 bits (µs)
OVERFLOW_Y = 240  # y == 240 marks a timestamp overflow in the format: no event may have it
IDENTITY = ("version", "format", "preset", "params", "seed", "seeding")


class SimulateError(ValueError):
    """A user error of `tmkt simulate` (one line; the CLI exits 2)."""


@dataclasses.dataclass(frozen=True)
class Picture:
    """One input picture: class folder name, file, and its seed reference `<class>/<file>`."""

    label: str
    path: Path

    @property
    def ref(self) -> str:
        return f"{self.label}/{self.path.name}"

    def out_path(self, out: Path) -> Path:
        return out / self.label / f"{self.path.stem}.bin"


def find_pictures(root: Path) -> list[Picture]:
    """Pictures under `<root>/<class>/` (or `<root>/101_ObjectCategories/<class>/`), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SimulateError(f"--images {root}: no such folder")
    if (root / "101_ObjectCategories").is_dir():
        root = root / "101_ObjectCategories"
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    pictures = [
        Picture(d.name, f)
        for d in classes
        for f in sorted(d.iterdir())
        if f.is_file() and f.suffix.lower() in SUFFIXES and not f.name.startswith(".")
    ]
    if not pictures:
        raise SimulateError(
            f"--images {root}: no class folders with pictures ({'/'.join(SUFFIXES)}); "
            "expected <images>/<class>/<picture>"
        )
    stems: dict[tuple[str, str], Path] = {}
    for p in pictures:
        other = stems.setdefault((p.label, p.path.stem), p.path)
        if other != p.path:
            raise SimulateError(f"{other} and {p.path} would both be written to "
                                f"{p.label}/{p.path.stem}.bin")
    return pictures


def check_format(p: SimParams) -> None:
    """The `.bin` format holds x < 256, y < 240 (240 is the overflow marker), t < 2^23 µs."""
    w, h = p.sensor_size
    if w > 256 or h > OVERFLOW_Y:
        raise SimulateError(f"sensor {w}x{h} does not fit the .bin format (width <= 256, "
                            f"height <= {OVERFLOW_Y})")
    if p.duration_us > MAX_T:
        raise SimulateError(f"duration_us {p.duration_us} does not fit the .bin format's "
                            f"23-bit timestamps (< {MAX_T} µs)")


def encode_bin(events: np.ndarray) -> bytes:
    """EVENT_DTYPE events -> the 5-byte `.bin` records (lossless within the format's range)."""
    t = events["t"].astype(np.int64)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    if len(events) and (t.min() < 0 or t.max() >= MAX_T or x.max() > 255
                        or y.max() >= OVERFLOW_Y):
        raise SimulateError("events outside the .bin format's range")
    rec = np.empty((len(events), 5), np.uint8)
    rec[:, 0] = x
    rec[:, 1] = y
    rec[:, 2] = ((events["p"] != 0).astype(np.int64) << 7) | (t >> 16)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    return rec.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to `<path>.part`, flush, then rename: `path` exists only when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PART)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def simulate_one(pic: Picture, params: SimParams, seed: int, out: Path) -> tuple[int, str | None]:
    """Simulate and write one picture: (event count, None) or (0, error message)."""
    from tmkt.datasets.sim import picture_seed
    from tmkt.events.sim import simulate_batch

    try:
        img = load_picture(pic.path)
    except Exception as e:  # noqa: BLE001  (any Pillow failure: truncated, not an image, ...)
        return 0, f"{pic.path}: cannot read picture ({' '.join(str(e).split())})"
    events = simulate_batch([img], params, seeds=[picture_seed(seed, pic.ref)])[0]
    write_atomic(pic.out_path(out), encode_bin(events))
    return len(events), None


def manifest(preset: str, params: SimParams, seed: int, images: Path) -> dict[str, Any]:
    return {
        "tool": "tmkt simulate",
        "version": MANIFEST_VERSION,
        "format": "nbin: 5-byte N-MNIST/N-Caltech101 .bin",
        "preset": preset,
        "params": params.to_dict(),
        "seed": int(seed),
        "seeding": "picture_seed(seed, '<class>/<file name>')",
        "images": str(Path(images).resolve()),
    }


def prepare_out(out: Path, info: dict[str, Any]) -> None:
    """Create `out` with its manifest, or check that it holds this same simulation; remove
    stale `.part` files of an interrupted run."""
    out = Path(out)
    path = out / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SimulateError(f"{path}: unreadable manifest ({e})") from None
        if {k: old.get(k) for k in IDENTITY} != {k: info[k] for k in IDENTITY}:
            diff = [k for k in IDENTITY if old.get(k) != info[k]]
            raise SimulateError(
                f"{out} holds another simulation (its {', '.join(diff)} differ: preset "
                f"{old.get('preset')!r}, seed {old.get('seed')!r}); use another --out"
            )
    elif out.exists():
        if not out.is_dir():
            raise SimulateError(f"--out {out}: not a folder")
        if any(out.iterdir()):
            raise SimulateError(f"--out {out}: a non-empty folder without {MANIFEST} "
                                "(not a tmkt simulate output); use an empty or new folder")
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(info, indent=1) + "\n").encode())
    for stale in out.glob(f"*/*{PART}"):
        stale.unlink()


@dataclasses.dataclass
class Summary:
    """What a run did: pictures simulated, already there, unreadable (skipped); events."""

    total: int
    done: int = 0
    existing: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    events: int = 0
    seconds: float = 0.0


def simulate_folder(
    images: Path,
    out: Path,
    params: SimParams,
    *,
    preset: str = "custom",
    seed: int = 0,
    workers: int = 2,
    on_error: str = "skip",
    progress: bool | None = None,
    log=None,
) -> Summary:
    """Simulate every picture under `images` into `out` (see the module docstring).

    `on_error`: "skip" (name each unreadable picture through `log`, count them) or "stop"
    (a `SimulateError` naming it). `progress`: a tqdm bar (None: on a terminal only).
    """
    from tqdm import tqdm

    if on_error not in ("skip", "stop"):
        raise SimulateError(f"--on-error must be skip or stop, got {on_error!r}")
    if workers < 1:
        raise SimulateError(f"--workers must be >= 1, got {workers}")
    if seed < 0:
        raise SimulateError(f"--seed must be >= 0, got {seed}")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    check_format(params)
    pictures = find_pictures(images)
    out = Path(out)
    prepare_out(out, manifest(preset, params, seed, images))
    todo = [p for p in pictures if not p.out_path(out).is_file()]
    summary = Summary(len(pictures), existing=len(pictures) - len(todo))
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="pic", desc="tmkt simulate", dynamic_ncols=True,
               disable=None if progress is None else not progress)

    def done(pic: Picture, n: int, err: str | None) -> None:
        bar.update(1)
        if err is None:
            summary.done += 1
            summary.events += n
            return
        if on_error == "stop":
            raise SimulateError(err)
        summary.failed.append(str(pic.path))
        msg = f"tmkt simulate: skipped {err}"
        if bar.disable:
            log(msg)
        else:
            bar.write(msg, file=sys.stderr)

    try:
        if workers == 1 or len(todo) < 2:
            for pic in todo:
                done(pic, *simulate_one(pic, params, seed, out))
        else:
            from tmkt.datasets.sim import _start_pool  # fork where available, else spawn

            with _start_pool(min(workers, len(todo))) as pool:
                futures = {pool.submit(simulate_one, pic, params, seed, out): pic
                           for pic in todo}
                try:
                    for fut in concurrent.futures.as_completed(futures):
                        done(futures[fut], *fut.result())
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary


def _set_arg(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected field=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `simulate` to the `tmkt` subparsers."""
    s = subparsers.add_parser(
        "simulate", help="simulate an event dataset (.bin) from a folder of pictures",
        description="Simulate one event recording per picture of <images>/<class>/ into "
                    "<out>/<class>/<stem>.bin (N-MNIST/N-Caltech101 format); resumable.",
    )
    s.add_argument("--preset", default="ncaltech101", choices=list(PRESETS),
                   help="simulator preset (default ncaltech101)")
    s.add_argument("--images", type=Path, required=True,
                   help="picture folder <images>/<class>/*.jpg|jpeg|png (or its parent "
                        "holding 101_ObjectCategories)")
    s.add_argument("--out", type=Path, required=True, help="output folder <out>/<class>/*.bin")
    s.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    s.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    s.add_argument("--on-error", default="skip", choices=["skip", "stop"],
                   help="an unreadable picture: skip it (named, counted; default) or stop")
    s.add_argument("--set", nargs="*", type=_set_arg, default=[], metavar="field=value",
                   help="SimParams overrides, e.g. threshold_on=0.3 (values as JSON)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_simulate)
    return s


def cmd_simulate(args: argparse.Namespace) -> int:
    """`tmkt simulate`."""
    from tmkt.datasets.sim import sim_params

    try:
        params = sim_params({"sim_preset": args.preset, "sim": dict(args.set)})
    except (TypeError, ValueError) as e:
        raise SimulateError(f"--set: {' '.join(str(e).split())}") from None
    s = simulate_folder(args.images, args.out, params, preset=args.preset, seed=args.seed,
                        workers=args.workers, on_error=args.on_error,
                        progress=False if args.quiet else None)
    rate = s.done / s.seconds if s.seconds > 0 else 0.0
    print(f"tmkt simulate: {s.done} simulated ({s.events} events, {rate:.1f} pictures/s), "
          f"{s.existing} already there, {len(s.failed)} unreadable skipped, of {s.total} "
          f"pictures -> {args.out}")
    return 0
