"""`sim` event source: any static dataset -> paired (static, simulated events); `digits_sim`.

- `digits_sim` (also `sim` with no base): scikit-learn's embedded 8x8 digits (1797 pictures,
  10 classes, no download) shown N-MNIST style: each picture is simulated as a 34x34 saccade
  recording (`tmkt.events.sim`, default N-MNIST parameters). Static = the digits (uint8).
- `sim` with ``options={"base": "<family>"}``: the static pictures of that family (e.g.
  "nmnist" for MNIST, "cifar10dvs" for CIFAR-10), each with its own simulated recording.

Every event item is linked to its picture (equal `key`), so splits keep a picture with its
recording and `pairing="index"` works. Simulation is seeded per picture (`sim_seed`, crc32 of
the picture's ref): reproducible, independent of batching and order. Recordings are simulated
a chunk of pictures at a time on first use and kept in a process-wide LRU (20 M events); the
frames are cached on disk by the datasets' frame cache (refs carry a hash of the simulator
settings, so other settings rebuild it).

Options (``DataConfig.options``): ``base`` (family name, default "digits"), ``sim_preset``
(a `tmkt.events.sim.PRESETS` name, default "nmnist"), ``sim`` (dict of `SimParams` overrides),
``sim_seed`` (int, default 0), ``sim_chunk`` (pictures per batch, default 256).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

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


class _ChunkStore:
    """Process-wide LRU of simulated chunks, shared by every source with the same settings
    (the train, val and test builders each make their own source)."""

    def __init__(self, max_events: int = 20_000_000) -> None:
        self.max_events = max_events
        self.chunks: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
        self.size = 0

    def get(self, key: tuple) -> list[np.ndarray] | None:
        if key in self.chunks:
            self.chunks.move_to_end(key)
            return self.chunks[key]
        return None

    def put(self, key: tuple, events: list[np.ndarray]) -> None:
        self.chunks[key] = events
        self.size += sum(len(e) for e in events)
        while self.size > self.max_events and len(self.chunks) > 1:
            _, old = self.chunks.popitem(last=False)
            self.size -= sum(len(e) for e in old)


STORE = _ChunkStore()


class SimulatedEvents:
    """`load_events` of a sim source: simulates pictures a chunk at a time on first use."""

    def __init__(
        self,
        pictures: list[Item],
        load_static: Callable[[Item], np.ndarray],
        params: SimParams,
        seed: int,
        chunk: int = 256,
        store_key: tuple = (),
    ) -> None:
        self.pictures = pictures
        self.load_static = load_static
        self.params = params
        self.seed = seed
        self.chunk = max(1, int(chunk))
        self.position = {it.ref: i for i, it in enumerate(pictures)}
        self.store_key = store_key

    def events_of(self, i: int) -> np.ndarray:
        """Events of picture i (simulating its whole chunk if needed)."""
        c = i // self.chunk
        key = (*self.store_key, self.chunk, c)
        events = STORE.get(key)
        if events is None:
            todo = self.pictures[c * self.chunk : (c + 1) * self.chunk]
            images = [self.load_static(it) for it in todo]
            seeds = [picture_seed(self.seed, it.ref) for it in todo]
            events = simulate_batch(images, self.params, seeds=seeds)
            STORE.put(key, events)
        return events[i - c * self.chunk]

    def __call__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        picture_ref = item.ref.split("/", 1)[1]
        if picture_ref not in self.position:
            raise DatasetError(f"{item.ref}: no such picture in this sim source")
        return self.events_of(self.position[picture_ref]), tuple(self.params.sensor_size)


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
    # pictures are identified by the base family, its picture list and the settings
    listing = hashlib.sha256("\n".join(p.ref for p in pictures).encode()).hexdigest()[:12]
    store_key = (base.name, listing, tag)
    loader = SimulatedEvents(pictures, base.load_static, params, seed, chunk, store_key)
    return Sources(name, events, pictures, loader, base.load_static, tuple(params.sensor_size))


@functools.lru_cache(maxsize=1)
def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 (0-16 scaled to 0-255) and their labels.

    Read straight from scikit-learn's bundled `digits.csv.gz` (importing sklearn takes
    seconds); falls back to `sklearn.datasets.load_digits` if the file is not where expected.
    """
    spec = importlib.util.find_spec("sklearn")
    csv = None
    if spec is not None and spec.submodule_search_locations:
        csv = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if csv is not None and csv.is_file():
        data = np.loadtxt(csv, delimiter=",")
        pixels, labels = data[:, :64].reshape(-1, 8, 8), data[:, 64]
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        pixels, labels = d.images, d.target
    images = np.round(pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    images.setflags(write=False)
    return images, labels.astype(np.int64)


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
