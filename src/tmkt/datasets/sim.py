"""`sim` event source: any static dataset -> paired (static, simulated events); `digits_sim`.

- `digits_sim` (also `sim` with no base): scikit-learn's embedded 8x8 digits (1797 pictures,
  10 classes, no download) shown N-MNIST style: each picture is simulated as a 34x34 saccade
  recording (`tmkt.events.sim`, default N-MNIST parameters). Static = the digits (uint8).
- `sim` with ``options={"base": "<family>"}``: the static pictures of that family (e.g.
  "nmnist" for MNIST, "cifar10dvs" for CIFAR-10), each with its own simulated recording.

Every event item is linked to its picture (equal `key`), so splits keep a picture with its
recording and `pairing="index"` works. Simulation is seeded per picture (`sim_seed`, crc32 of
the picture's ref): reproducible, independent of batching and order. Recordings are simulated
in batches on first use and kept in memory; the frames are cached on disk by the datasets'
frame cache (refs carry a hash of the simulator settings, so other settings rebuild it).

Options (``DataConfig.options``): ``base`` (family name, default "digits"), ``sim_preset``
(a `tmkt.events.sim.PRESETS` name, default "nmnist"), ``sim`` (dict of `SimParams` overrides),
``sim_seed`` (int, default 0), ``sim_chunk`` (pictures per batch, default 256).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from collections.abc import Callable

import numpy as np

from tmkt.datasets.base import DatasetError, Item, Sources
from tmkt.datasets.config import DataConfig
from tmkt.datasets.registry import DATASETS, get_factory
from tmkt.events.sim import SimParams, preset, simulate_batch

OPTION_KEYS = ("base", "sim_preset", "sim", "sim_seed", "sim_chunk")


def sim_params(options: dict) -> SimParams:
    """The simulator settings named by `options` (preset, then overrides)."""
    name = options.get("sim_preset", "nmnist")
    overrides = dict(options.get("sim") or {})
    fields = {f.name for f in dataclasses.fields(SimParams)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise DatasetError(f"unknown simulator setting(s) {unknown}; valid: {sorted(fields)}")
    for k, v in overrides.items():
        if isinstance(v, list):
            overrides[k] = tuple(tuple(e) if isinstance(e, list) else e for e in v)
    return preset(name, **overrides)


def settings_tag(params: SimParams, seed: int) -> str:
    """Short hash of everything that determines the simulated recordings."""
    blob = json.dumps({"params": params.to_dict(), "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def picture_seed(seed: int, ref: str) -> list[int]:
    """The per-picture seed: (sim_seed, crc32 of the picture's ref)."""
    return [int(seed), zlib.crc32(ref.encode())]


class SimulatedEvents:
    """`load_events` of a sim source: simulates pictures in batches on first use, memoised."""

    def __init__(
        self,
        pictures: list[Item],
        load_static: Callable[[Item], np.ndarray],
        params: SimParams,
        seed: int,
        chunk: int = 256,
    ) -> None:
        self.pictures = pictures
        self.load_static = load_static
        self.params = params
        self.seed = seed
        self.chunk = max(1, int(chunk))
        self.position = {it.ref: i for i, it in enumerate(pictures)}
        self.memo: dict[int, np.ndarray] = {}

    def events_of(self, i: int) -> np.ndarray:
        """Events of picture i (simulating its whole chunk if needed)."""
        if i not in self.memo:
            start = i - i % self.chunk
            stop = min(start + self.chunk, len(self.pictures))
            todo = [j for j in range(start, stop) if j not in self.memo]
            images = [self.load_static(self.pictures[j]) for j in todo]
            seeds = [picture_seed(self.seed, self.pictures[j].ref) for j in todo]
            for j, ev in zip(todo, simulate_batch(images, self.params, seeds=seeds), strict=True):
                self.memo[j] = ev
        return self.memo[i]

    def __call__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        picture_ref = item.ref.split("/", 1)[1]
        if picture_ref not in self.position:
            raise DatasetError(f"{item.ref}: no such picture in this sim source")
        return self.events_of(self.position[picture_ref]), tuple(self.params.sensor_size)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["memo"] = {}  # worker processes simulate what they need
        return state


def simulated_sources(name: str, base: Sources, params: SimParams, seed: int, chunk: int):
    """Wrap a family's static pictures: one simulated recording per picture, linked by key."""
    if not base.static:
        raise DatasetError(f"dataset {name!r}: the base family {base.name!r} has no pictures")
    tag = settings_tag(params, seed)
    pictures = [
        dataclasses.replace(s, key=s.key if s.key is not None else ("picture", s.ref))
        for s in base.static
    ]
    events = [Item(f"sim-{tag}/{s.ref}", s.label, s.key, s.official, None) for s in pictures]
    loader = SimulatedEvents(pictures, base.load_static, params, seed, chunk)
    return Sources(name, events, pictures, loader, base.load_static, tuple(params.sensor_size))


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 (0-16 scaled to 0-255) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, d.target.astype(np.int64)


def digits_static() -> Sources:
    """The embedded digits as a static-only family (no events)."""
    images, labels = load_digits_images()
    items = [Item(f"digits/{i:04d}", str(int(lab))) for i, lab in enumerate(labels)]

    def load(item: Item) -> np.ndarray:
        return images[int(item.ref.split("/")[1])]

    return Sources("digits", [], items, _no_events, load, None)


def _no_events(item: Item) -> tuple[np.ndarray, tuple[int, int]]:
    raise DatasetError(f"{item.ref}: the digits family holds pictures only")


def _options(cfg: DataConfig) -> dict:
    opts = dict(cfg.options or {})
    return opts


@DATASETS.register("sim")
def sim(cfg: DataConfig) -> Sources:
    """Static pictures of ``options["base"]`` (default: the embedded digits) + simulated events."""
    opts = _options(cfg)
    params = sim_params(opts)
    base_name = opts.get("base", "digits")
    if base_name == "digits":
        base = digits_static()
    elif base_name in ("sim", "digits_sim"):
        raise DatasetError(f"dataset 'sim': base {base_name!r} would simulate a simulation")
    else:
        base_cfg = dataclasses.replace(
            cfg, name=base_name, options={k: v for k, v in opts.items() if k not in OPTION_KEYS}
        )
        base = get_factory(base_name)(base_cfg)
    return simulated_sources(
        cfg.name, base, params, int(opts.get("sim_seed", 0)), int(opts.get("sim_chunk", 256))
    )


@DATASETS.register("digits_sim")
def digits_sim(cfg: DataConfig) -> Sources:
    """The embedded 8x8 digits with simulated N-MNIST-style 34x34 recordings (no download)."""
    opts = _options(cfg)
    if opts.get("base", "digits") != "digits":
        raise DatasetError("dataset 'digits_sim' takes no 'base' option; use 'sim' for that")
    return sim(dataclasses.replace(cfg, options={**opts, "base": "digits"}))
