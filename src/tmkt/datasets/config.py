"""`DataConfig`: every data setting in one dataclass (defaults as in SPEC; [ours] choices noted)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")
BINNINGS = ("time", "count")
NORMS = ("none", "log1p", "clip")
STATIC_ENCODINGS = ("hsv_v", "gray", "sim")
PAIRINGS = ("class", "index")
FRAMES_DTYPES = ("auto", "float32")
STATIC_SIM_KEYS = ("preset", "seed", "per_epoch", "params")


@dataclass
class DataConfig:
    """Data settings. Paths may be str or Path; `size` is (H, W) or None for the native size.

    Defaults: T=10 [He]; binning "time" [He]; pairing "class" [He]; val_fraction 0.1 and
    test_fraction 0.1 (only where a dataset has no official test split) [ours].
    """

    name: str = "nmnist"
    root: str | Path = "data"
    static_root: str | Path | None = None  # None: same as root
    T: int = 10
    size: tuple[int, int] | None = None
    binning: str = "time"
    norm: str = "none"
    # "hsv_v" (the paper's), "gray", or "sim": each picture becomes a recording of the dataset's
    # simulator preset, binned exactly like the real events (settings in `static_sim`) [ours]
    static_encoding: str = "hsv_v"
    # [ours] the `sim` static encoding: preset (None: the dataset's own, e.g. nmnist,
    # ncaltech101), seed (int >= 0), per_epoch (True: a fresh simulator seed every epoch,
    # simulated on demand instead of read from the frame cache), params (SimParams overrides)
    static_sim: dict[str, Any] = field(default_factory=dict)
    pairing: str = "class"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42
    cache: bool = True
    # [ours] "auto": event frames read from a frame cache that stores exact uint8 counts come out
    # as uint8 (a quarter of the bytes to copy, pin and send to a GPU; networks widen them on
    # their device); "float32": always float32. Decoded or augmented frames are float32.
    frames_dtype: str = "auto"
    cache_dir: str | Path | None = None  # None: <root>/.tmkt_cache
    augment: bool = False
    exclude_background: bool = True
    # [ours] the event budget: at most this many training recordings per class (val and test
    # stay whole), drawn by `subset_seed` (None: the run's train.seed, so every seed of an
    # experiment draws its own subset)
    max_per_class: int | None = None
    subset_seed: int | None = None
    class_intersection: bool = False  # True: keep only classes present in both modalities
    split_file: str | Path | None = None  # a JSON written by `save_split`, reused as is
    options: dict[str, Any] = field(default_factory=dict)  # family-specific extras (e.g. sim)

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            self.size = (self.size, self.size)
        if self.size is not None:
            if len(self.size) != 2:
                raise ValueError(f"DataConfig.size must be (H, W), an int or None, got {self.size}")
            self.size = (int(self.size[0]), int(self.size[1]))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field for any out-of-range setting."""
        _choice("binning", self.binning, BINNINGS)
        _choice("norm", self.norm, NORMS)
        _choice("static_encoding", self.static_encoding, STATIC_ENCODINGS)
        _choice("pairing", self.pairing, PAIRINGS)
        _choice("frames_dtype", self.frames_dtype, FRAMES_DTYPES)
        if int(self.T) < 1:
            raise ValueError(f"DataConfig.T must be >= 1, got {self.T}")
        if self.size is not None and (self.size[0] < 1 or self.size[1] < 1):
            raise ValueError(f"DataConfig.size must be positive (H, W), got {self.size}")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"DataConfig.{name} must be in [0, 1), got {v}")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ValueError(f"DataConfig.max_per_class must be >= 1, got {self.max_per_class}")
        if self.subset_seed is not None and self.subset_seed < 0:
            raise ValueError(f"DataConfig.subset_seed must be >= 0 or null, got {self.subset_seed}")
        if not isinstance(self.static_sim, dict):
            raise ValueError("DataConfig.static_sim must map preset/seed/per_epoch/params")
        unknown = sorted(set(self.static_sim) - set(STATIC_SIM_KEYS))
        if unknown:
            raise ValueError(
                f"DataConfig.static_sim: unknown key(s) {unknown}; valid: {list(STATIC_SIM_KEYS)}"
            )
        if self.static_encoding == "sim" or self.static_sim:
            from tmkt.datasets.sim_static import static_sim_settings  # late: imports this module

            # values checked now; the dataset's preset only where the encoding is sim
            static_sim_settings(self if self.static_encoding == "sim" else
                                dataclasses.replace(self, name="nmnist", static_encoding="sim"))

    @property
    def root_path(self) -> Path:
        """The event data root."""
        return Path(self.root).expanduser()

    @property
    def static_root_path(self) -> Path:
        """The static data root (the event root unless set)."""
        return Path(self.static_root if self.static_root is not None else self.root).expanduser()

    @property
    def cache_path(self) -> Path:
        """The frame-cache directory: `cache_dir`; else `<root>/.tmkt_cache` where the data root
        can be written; else `$XDG_CACHE_HOME/tmkt` (`~/.cache/tmkt`): data roots are often
        read-only. Cache file names carry a hash of the root, so roots never share a file."""
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        local = self.root_path / ".tmkt_cache"
        if os.access(local if local.is_dir() else self.root_path, os.W_OK):
            return local
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tmkt"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        """Build from a mapping; unknown keys raise a ValueError listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown DataConfig key(s) {unknown}; valid keys: {', '.join(valid)}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (paths as str, size as list)."""
        out = dataclasses.asdict(self)
        for k in ("root", "static_root", "cache_dir", "split_file"):
            if out[k] is not None:
                out[k] = str(out[k])
        if out["size"] is not None:
            out["size"] = list(out["size"])
        return out


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"DataConfig.{name} must be one of {valid}, got {value!r}")
