"""`sim` event source: any static dataset -> paired (static, simulated events); `digits_sim`.

- `digits_sim` (also `sim` with no base): scikit-learn's embedded 8x8 digits (1797 pictures,
  10 classes, no download) shown N-MNIST style: each picture is simulated as a 34x34 saccade
  recording (`tmkt.events.sim`, default N-MNIST parameters). Static = the digits (uint8).
- `sim` with ``options={"base": "<family>"}``: the static pictures of that family (e.g.
  "nmnist" for MNIST, "cifar10dvs" for CIFAR-10), each with its own simulated recording.

Every event item is linked to its picture (equal `key`), so splits keep a picture with its
recording and `pairing="index"` works. Simulation is seeded per picture (`sim_seed`, crc32 of
the picture's ref): reproducible, independent of batching and order.

Work is proportional to what is asked: the loader (`SimulatedEvents`) simulates exactly the
pictures requested, each once. `load_many` (used by `EventDataset.decode_many`) simulates the
missing pictures of a batch with one `simulate_batch` call per `sim_chunk`; around a
frame-cache build `EventDataset` calls `plan(items)`, and the split's (or subset's) pictures
are then simulated ahead in request order, in full batches, across `sim_workers` processes
(a tqdm bar on a terminal from `PROGRESS_MIN` pictures), and handed to the cache once each
(not kept). Outside a build, recordings are kept in a process-wide per-picture LRU (`MEMO`,
20 M events) shared by the train/val/test builders: a picture asked for again is not
simulated again.
The frames are cached on disk by the datasets' frame cache (refs carry a hash of the simulator
settings, so other settings rebuild it).

Options (``DataConfig.options``): ``base`` (family name, default "digits"), ``sim_preset``
(a `tmkt.events.sim.PRESETS` name, default "nmnist"), ``sim`` (dict of `SimParams` overrides),
``sim_seed`` (int >= 0, default 0), ``sim_chunk`` (pictures per `simulate_batch` call, default
256), ``sim_workers`` (processes simulating a frame-cache build, default 1).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import multiprocessing
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tmkt.datasets.base import DatasetError, Item, Sources
from tmkt.datasets.config import DataConfig
from tmkt.datasets.registry import DATASETS, get_factory
from tmkt.events.sim import SimParams, preset, simulate_batch

OPTION_KEYS = ("base", "sim_preset", "sim", "sim_seed", "sim_chunk", "sim_workers")
MEMO_EVENTS = 20_000_000  # recordings kept in memory (events, all sources together)
MIN_PARALLEL = 512  # fewer pictures to simulate than this: no worker processes
PROGRESS_MIN = 1000  # a progress bar from this many pictures to simulate
# one process: on the shared 2-core machine 2 workers were 0.8x-1.1x as fast (another job
# holds a core; docs/simulator.md, "Simulated sources: build speed"); set sim_workers
# where cores are idle
DEFAULT_WORKERS = 1


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


class _RecordingMemo:
    """Process-wide LRU of simulated recordings, one entry per picture, bounded by events;
    shared by every source with the same settings (the train, val and test builders each make
    their own source)."""

    def __init__(self, max_events: int = MEMO_EVENTS) -> None:
        self.max_events = max_events
        self.items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.size = 0

    def get(self, key: tuple) -> np.ndarray | None:
        """The recording stored under `key` (marked as recently used), or None."""
        events = self.items.get(key)
        if events is not None:
            self.items.move_to_end(key)
        return events

    def put(self, key: tuple, events: np.ndarray) -> None:
        """Store a recording, dropping the least recently used ones beyond `max_events`."""
        old = self.items.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self.items[key] = events
        self.size += len(events)
        while self.size > self.max_events and len(self.items) > 1:
            _, dropped = self.items.popitem(last=False)
            self.size -= len(dropped)

    def clear(self) -> None:
        """Forget every recording."""
        self.items.clear()
        self.size = 0


MEMO = _RecordingMemo()


def simulate_pictures(
    images: list[np.ndarray], params: SimParams, seeds: list[list[int]], chunk: int
) -> list[np.ndarray]:
    """`simulate_batch` of one batch (module level, so worker processes can run it)."""
    return simulate_batch(images, params, seeds=seeds, chunk=chunk)


def _pool(workers: int) -> concurrent.futures.Executor | None:
    """A process pool of `workers` (fork where available), or None when it cannot help or
    cannot start (one worker; a daemonic process, e.g. a DataLoader worker, has no children)."""
    if workers < 2 or multiprocessing.current_process().daemon:
        return None
    return _start_pool(workers)


def _start_pool(workers: int) -> concurrent.futures.Executor:
    """A process pool of `workers`: fork (cheap to start: nothing to import again) else spawn."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx)


class _Plan:
    """The pictures a frame-cache build will ask for, in order: simulated ahead in batches
    (across worker processes when there are several) and handed out once each. The workers
    and the progress bar start at the first request, so a build that does not happen costs
    nothing."""

    def __init__(self, source: SimulatedEvents, positions: list[int]) -> None:
        self.source = source
        order = list(dict.fromkeys(positions))
        self.total = len(order)
        self.workers = source.workers if len(order) >= MIN_PARALLEL else 1
        size = max(1, min(source.chunk, -(-len(order) // self.workers)))
        self.batches = [order[k : k + size] for k in range(0, len(order), size)]
        self.batch_of = {i: b for b, batch in enumerate(self.batches) for i in batch}
        self.ready: dict[int, np.ndarray] = {}
        self.pending: dict[int, concurrent.futures.Future] = {}
        self.next = 0  # first batch not yet started
        self.started = False
        self.pool: concurrent.futures.Executor | None = None
        self.bar = None

    def _start(self) -> None:
        self.started = True
        self.pool = _pool(self.workers)
        if self.total >= PROGRESS_MIN:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total, desc=f"{self.source.name}: simulating recordings",
                unit="rec", leave=False, dynamic_ncols=True, disable=None,  # terminals only
            )

    def take(self, positions: list[int]) -> dict[int, np.ndarray]:
        """Recordings of `positions` (each handed out once); those outside the plan, or asked
        for again, are simulated on the spot."""
        if not self.started:
            self._start()
        out: dict[int, np.ndarray] = {}
        extra: list[int] = []
        for i in positions:
            if i not in self.ready:
                b = self.batch_of.get(i)
                if b is None or (b < self.next and b not in self.pending):
                    extra.append(i)
                    continue
                self._finish(b)
            out[i] = self.ready.pop(i)
        self._top_up()
        if extra:
            out.update(self.source.simulate(extra))
        return out

    def _top_up(self) -> None:
        """Keep every worker busy with a batch (the main process bins frames meanwhile)."""
        while self.pool is not None and len(self.pending) < self.workers:
            if self.next >= len(self.batches):
                return
            batch = self.batches[self.next]
            self.pending[self.next] = self.pool.submit(
                simulate_pictures, *self.source.inputs(batch)
            )
            self.next += 1

    def _finish(self, b: int) -> None:
        """Run (or collect from the workers) the batches up to `b`, in order."""
        while self.next <= b:
            batch = self.batches[self.next]
            if self.pool is None:
                self._store(batch, simulate_pictures(*self.source.inputs(batch)))
                self.next += 1
            else:
                self._top_up()
                if self.next <= b and len(self.pending) >= self.workers:
                    self._collect(min(self.pending))
        for k in sorted(k for k in self.pending if k <= b):
            self._collect(k)

    def _collect(self, k: int) -> None:
        self._store(self.batches[k], self.pending.pop(k).result())

    def _store(self, batch: list[int], events: list[np.ndarray]) -> None:
        self.ready.update(zip(batch, events, strict=True))
        if self.bar is not None:
            self.bar.update(len(batch))

    def close(self) -> None:
        """Stop the workers and the progress bar."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.bar is not None:
            self.bar.close()


class SimulatedEvents:
    """`load_events` of a sim source: simulates exactly the pictures asked for, once each.

    `load_many` simulates the missing ones of a batch with one `simulate_batch` call per
    `chunk`; inside `plan(items)` (a frame-cache build) the announced items are simulated ahead
    in full batches across `workers` processes, with a progress bar on long builds.
    """

    def __init__(
        self,
        pictures: list[Item],
        load_static: Callable[[Item], np.ndarray],
        params: SimParams,
        seed: int,
        chunk: int = 256,
        store_key: tuple = (),
        workers: int = 1,
        name: str = "sim",
    ) -> None:
        self.pictures = pictures
        self.load_static = load_static
        self.params = params
        self.seed = seed
        self.chunk = max(1, int(chunk))
        self.workers = max(1, int(workers))
        self.name = name
        self.position = {it.ref: i for i, it in enumerate(pictures)}
        self.store_key = store_key
        self._plan: _Plan | None = None

    def position_of(self, item: Item) -> int:
        """Index into `pictures` of an event item's picture."""
        picture_ref = item.ref.split("/", 1)[1] if "/" in item.ref else ""
        i = self.position.get(picture_ref)
        if i is None:
            raise DatasetError(f"{item.ref}: no such picture in this sim source")
        return i

    def inputs(self, positions: list[int]) -> tuple:
        """`simulate_pictures` arguments for the pictures at `positions`."""
        todo = [self.pictures[i] for i in positions]
        images = [np.asarray(self.load_static(it)) for it in todo]
        seeds = [picture_seed(self.seed, it.ref) for it in todo]
        return images, self.params, seeds, self.chunk

    def simulate(self, positions: list[int]) -> dict[int, np.ndarray]:
        """Simulate the pictures at `positions` now, `chunk` per batch, and remember them."""
        out: dict[int, np.ndarray] = {}
        for k in range(0, len(positions), self.chunk):
            batch = positions[k : k + self.chunk]
            for i, events in zip(batch, simulate_pictures(*self.inputs(batch)), strict=True):
                MEMO.put((*self.store_key, i), events)
                out[i] = events
        return out

    def events_of(self, i: int) -> np.ndarray:
        """Events of picture i (simulated alone if not remembered)."""
        return self.events_many([i])[0]

    def events_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """Events of the pictures at `positions` (repeats allowed), the missing ones simulated
        once each: from the plan in progress, else in batches of `chunk`."""
        found: dict[int, np.ndarray] = {}
        todo: list[int] = []
        for i in dict.fromkeys(int(i) for i in positions):
            events = MEMO.get((*self.store_key, i))
            if events is None:
                todo.append(i)
            else:
                found[i] = events
        if todo:
            plan = self._plan
            found.update(plan.take(todo) if plan is not None else self.simulate(todo))
        return [found[int(i)] for i in positions]

    def load_many(self, items: Sequence[Item]) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """`(events, sensor_size)` of every item, in order, simulated in batches (see above)."""
        positions = [self.position_of(it) for it in items]
        sensor = tuple(self.params.sensor_size)
        return [(events, sensor) for events in self.events_many(positions)]

    @contextlib.contextmanager
    def plan(self, items: Sequence[Item]) -> Iterator[None]:
        """Announce that `items` will be asked for in this order (a frame-cache build): they
        are then simulated ahead in full batches. Costs nothing if none is asked for."""
        if self._plan is not None:  # nested: the outer plan goes on
            yield
            return
        positions = [self.position_of(it) for it in items]
        todo = [i for i in positions if (*self.store_key, i) not in MEMO.items]
        self._plan = _Plan(self, todo) if todo else None
        try:
            yield
        finally:
            if self._plan is not None:
                self._plan.close()
            self._plan = None

    def __call__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        return self.load_many([item])[0]


def _int_option(opts: dict, name: str, default: int, minimum: int) -> int:
    """An integer option >= minimum, else a one-line DatasetError naming it."""
    value = opts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DatasetError(
            f"dataset 'sim': option {name} must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


def simulated_sources(
    name: str, base: Sources, params: SimParams, seed: int, chunk: int, workers: int = 1
) -> Sources:
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
    loader = SimulatedEvents(
        pictures, base.load_static, params, seed, chunk, store_key, workers, name
    )
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
        cfg.name,
        base,
        params,
        _int_option(opts, "sim_seed", 0, 0),
        _int_option(opts, "sim_chunk", 256, 1),
        _int_option(opts, "sim_workers", DEFAULT_WORKERS, 1),
    )


@DATASETS.register("digits_sim")
def digits_sim(cfg: DataConfig) -> Sources:
    """The embedded 8x8 digits with simulated N-MNIST-style 34x34 recordings (no download)."""
    opts = _options(cfg)
    if opts.get("base", "digits") != "digits":
        raise DatasetError("dataset 'digits_sim' takes no 'base' option; use 'sim' for that")
    return sim(dataclasses.replace(cfg, options={**opts, "base": "digits"}))
