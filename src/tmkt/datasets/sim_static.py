"""The `sim` static encoding (``data.static_encoding: sim``) [ours].

Each static picture becomes a simulated event recording (`tmkt.events.sim`, the dataset's
simulator preset) binned exactly like the config's real events: same T, binning, frame size
(the real events' `frame_hw`) and norm, through the same `events_to_frames` path as
`EventDataset`. `SimStaticFrames` is that `EventDataset` over the pictures of a static split
(the `sim` event source, `tmkt.datasets.sim.simulated_sources`, over those pictures): frames
come from its own frame cache (built once; file ``<dataset>-simstatic-<preset>-<hash of the
simulator parameters and seed>-...``, one per setting), augmented like event frames in the
train split.

Settings (``data.static_sim``, `static_sim_settings`): ``preset`` (None: the dataset's own:
nmnist, ncaltech101, cifar10dvs by name; `sim`/`digits_sim` their ``options.sim_preset`` with
their ``options.sim`` overrides), ``seed`` (int >= 0; picture j is simulated with
``picture_seed(seed, ref)``, like the `sim` source), ``per_epoch`` (True: epoch e simulates
with the seed `epoch_seed(seed, e)`, on demand, no frame cache), ``params`` (`SimParams`
overrides, applied last).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tmkt.datasets import cache as frame_cache
from tmkt.datasets.base import DatasetError, Item, Sources
from tmkt.datasets.config import DataConfig
from tmkt.datasets.event_frames import (
    FRAMES_VERSION,
    EventDataset,
    _event_augment,
    frames_code_hash,
)
from tmkt.datasets.prepare import Prepared, _check_split
from tmkt.datasets.sim import DEFAULT_WORKERS, settings_tag, sim_params, simulated_sources
from tmkt.events.sim import PRESETS, SimParams

FAMILY_PRESETS = {"nmnist": "nmnist", "ncaltech101": "ncaltech101", "cifar10dvs": "cifar10dvs"}
SIM_FAMILIES = ("sim", "digits_sim")  # their own options.sim_preset (default "nmnist")
SIM_CHUNK = 256  # pictures per simulate_batch call


@dataclasses.dataclass(frozen=True)
class StaticSim:
    """Validated ``data.static_sim``: the preset's name, the full simulator parameters, the
    seed, and whether every epoch simulates anew."""

    preset: str
    params: SimParams
    seed: int
    per_epoch: bool


def static_sim_settings(cfg: DataConfig) -> StaticSim:
    """``cfg.static_sim`` checked and resolved (one-line `DatasetError`s naming the key)."""
    opts = cfg.static_sim or {}
    names = ", ".join(PRESETS)
    name = opts.get("preset")
    overrides: dict[str, Any] = {}
    if name is None:
        if cfg.name in FAMILY_PRESETS:
            name = FAMILY_PRESETS[cfg.name]
        elif cfg.name in SIM_FAMILIES:
            family = cfg.options or {}
            name = family.get("sim_preset", "nmnist")
            overrides = dict(family.get("sim") or {})
        else:
            raise DatasetError(
                f"data.static_encoding sim: dataset {cfg.name!r} has no simulator preset; set "
                f"data.static_sim.preset (one of {names})"
            )
    elif not isinstance(name, str) or name not in PRESETS:
        raise DatasetError(f"data.static_sim.preset must be one of {names} or null, got {name!r}")
    seed = opts.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DatasetError(f"data.static_sim.seed must be an integer >= 0, got {seed!r}")
    per_epoch = opts.get("per_epoch", False)
    if not isinstance(per_epoch, bool | np.bool_):
        raise DatasetError(f"data.static_sim.per_epoch must be true or false, got {per_epoch!r}")
    params = opts.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DatasetError(
            f"data.static_sim.params must map SimParams fields to values, got {params!r}"
        )
    try:
        full = sim_params({"sim_preset": name, "sim": {**overrides, **params}})
    except (ValueError, TypeError) as e:  # DatasetError is a ValueError
        msg = " ".join(str(e).split())
        raise DatasetError(f"data.static_sim.params: {msg}") from None
    return StaticSim(str(name), full, int(seed), bool(per_epoch))


def epoch_seed(seed: int, epoch: int) -> int:
    """The simulator seed of `epoch` with ``per_epoch`` (a 63-bit hash of (seed, epoch))."""
    state = np.random.SeedSequence([int(seed), int(epoch), 0x5157]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def sim_code_hash() -> str:
    """Hash of `tmkt.events.sim`'s source: any change there invalidates the sim frame caches."""
    import tmkt.events.sim as sim

    return frame_cache.source_hash(sim)


def load_picture(load: Callable[[Item], np.ndarray], it: Item) -> np.ndarray:
    """One picture as an array (read errors as a one-line `DatasetError` naming it)."""
    try:
        return np.asarray(load(it))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{it.path or it.ref}: cannot read picture ({e})") from None


def picture_fingerprint(
    items: Sequence[Item], load: Callable[[Item], np.ndarray]
) -> tuple[list[list[Any]], str]:
    """What identifies a picture list for a cache: per picture [ref, label, file size, mtime]
    (None, None for pictures without a file) and a hash of the bytes of the latter."""
    digest = hashlib.blake2b(digest_size=16)
    fingerprint = []
    for it in items:
        if it.path is not None and Path(it.path).is_file():
            st = Path(it.path).stat()
            fingerprint.append([it.ref, it.label, st.st_size, st.st_mtime_ns])
        else:
            img = np.ascontiguousarray(load_picture(load, it))
            digest.update(f"{img.dtype.str}{img.shape}".encode())
            digest.update(img.tobytes())
            fingerprint.append([it.ref, it.label, None, None])
    return fingerprint, digest.hexdigest()


def _no_events(item: Item) -> tuple[np.ndarray, tuple[int, int]]:
    raise DatasetError(f"{item.ref}: a picture list holds no recordings")


class SimStaticFrames(EventDataset):
    """`EventDataset` of simulated recordings of `pictures` (one per picture, same order):
    frames (T, 2, H, W) float32 binned like the config's real events, from a frame cache of
    their own (not with ``per_epoch``), event-augmented in the train split with ``augment``."""

    def __init__(self, prep: Prepared, split: str, pictures: Sequence[Item]) -> None:
        _check_split(split)
        cfg = prep.cfg
        self.cfg, self.split = cfg, split
        self.data_split = prep.split
        self.classes = list(prep.classes)
        self.sim = static_sim_settings(cfg)
        self.pictures = list(pictures)
        if not self.pictures:
            raise DatasetError(f"dataset {cfg.name!r}: split {split!r} holds no static picture")
        self.hw = prep.frame_hw
        self._targets = [self.classes.index(it.label) for it in self.pictures]
        self._base = Sources(
            prep.sources.name, [], self.pictures, _no_events, prep.sources.load_static, None
        )
        self.augment = _event_augment() if cfg.augment and split == "train" else None
        self.epoch = 0
        self.draw_seed = cfg.seed
        self.seed_in_use = -1
        self._use_seed(self.sim_seed(0))
        self.cache = None
        if cfg.cache and not self.sim.per_epoch:
            self._fingerprint, self._digest = picture_fingerprint(
                self.pictures, prep.sources.load_static
            )
            self.cache = self._open_cache(prep)

    def sim_seed(self, epoch: int) -> int:
        """The simulator seed of `epoch` (`static_sim.seed`, or `epoch_seed` with per_epoch)."""
        return epoch_seed(self.sim.seed, epoch) if self.sim.per_epoch else self.sim.seed

    def _use_seed(self, seed: int) -> None:
        if seed == self.seed_in_use:
            return
        src = simulated_sources(
            f"{self.cfg.name} static sim", self._base, self.sim.params, seed, SIM_CHUNK,
            DEFAULT_WORKERS,
        )
        self.items, self._load, self.seed_in_use = src.events, src.load_events, seed

    def cache_settings(self, prep: Prepared) -> dict[str, Any]:
        """Everything that determines the simulated frames (besides the picture list)."""
        c = self.cfg
        settings = {
            "kind": "simstatic",
            "dataset": c.name,
            "split": self.split,
            "root": str(c.static_root_path.resolve()),
            "T": c.T,
            "size": list(self.hw),
            "binning": c.binning,
            "norm": c.norm,
            "preset": self.sim.preset,
            "params": self.sim.params.to_dict(),
            "seed": self.sim.seed,
            "in_memory_pictures": self._digest,
            "sim_code": sim_code_hash(),
            "frames_version": FRAMES_VERSION,
            "frames_code": frames_code_hash(),
        }
        return json.loads(json.dumps(settings, sort_keys=True, default=str))

    def cache_tag(self) -> str:
        c = self.cfg
        h, w = self.hw
        sim = settings_tag(self.sim.params, self.sim.seed)  # other settings: another file
        return (
            f"{c.name}-simstatic-{self.sim.preset}-{sim}-{self.split}-T{c.T}-{h}x{w}-"
            f"{c.binning}-{c.norm}-P{len(self.pictures)}"
        )

    def cache_fingerprint(self) -> list[list[Any]]:
        return self._fingerprint

    @property
    def narrow(self) -> bool:
        """Never: the static frames are always handed on widened to float32."""
        return False

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the augmentation draws (and, with per_epoch, the simulator) for an epoch."""
        super().set_epoch(epoch)
        self._use_seed(self.sim_seed(self.epoch))
