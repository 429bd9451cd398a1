"""Static frames of one split (`StaticDataset`): pictures -> (T, 2, H, W) sequences by the
configured encoding, through the plane cache, augmented in the train split; `build_static`.

With ``static_encoding: sim`` every picture is a simulated recording binned like the real
events (`tmkt.datasets.sim_static.SimStaticFrames`, its own frame cache): full (T, 2, H, W)
frames, no planes, event augmentation in the train split."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import torch

from tmkt.datasets import cache as frame_cache
from tmkt.datasets.base import DatasetError, Item
from tmkt.datasets.collate import SampleBatch, _labels
from tmkt.datasets.config import DataConfig
from tmkt.datasets.prepare import Prepared, _check_split, _ClassFrames, prepare
from tmkt.datasets.sim_static import SimStaticFrames, load_picture, picture_fingerprint


def static_code_hash() -> str:
    """Hash of `tmkt.static.encode`'s source: any change there invalidates plane caches."""
    import tmkt.static.encode as encode

    return frame_cache.source_hash(encode)

class StaticDataset(_ClassFrames):
    """Encoded static pictures `(static (T,2,H,W) float32 tensor, label int)` of one split."""

    def __init__(
        self, prep: Prepared, split: str, *, items: list[Item] | None = None
    ) -> None:
        _check_split(split)
        cfg = prep.cfg
        self.cfg, self.split = cfg, split
        self.data_split = prep.split
        self.classes = list(prep.classes)
        self.items = prep.static_items(split) if items is None else items
        if not self.items:
            raise DatasetError(f"dataset {cfg.name!r}: split {split!r} holds no static picture")
        self._load = prep.sources.load_static
        self.hw = prep.frame_hw
        self._targets = [self.classes.index(it.label) for it in self.items]
        self.augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
        self.epoch = 0
        self.draw_seed = cfg.seed  # the trainer sets train.seed (`set_draw_seed`)
        self.planes: frame_cache.FrameCache | None = None
        # static_encoding "sim": simulated recordings of the pictures (frame cache, no planes)
        self.sim: SimStaticFrames | None = None
        if cfg.static_encoding == "sim":
            self.sim = SimStaticFrames(prep, split, self.items)
            self.augment = self.sim.augment  # event augmentation of the frames
        elif cfg.augment and split == "train":
            self.augment = _static_augment()

    def encode(self, j: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Picture j as a (T, 2, H, W) float32 sequence (augmented in the train split)."""
        from tmkt.static.encode import encode_static

        if self.sim is not None:
            rng = rng if rng is not None or self.augment is None else self.rng(j)
            return self.sim.frames(j, rng)
        if self.augment is None and self.planes is not None:  # the plane cache: no Pillow
            out = np.empty((self.cfg.T, 2, *self.hw), dtype=np.float32)
            out[...] = self.planes.array[j]
            return out
        it = self.items[j]
        try:
            img = np.asarray(self._load(it))
        except (OSError, ValueError) as e:
            raise DatasetError(f"{it.path or it.ref}: cannot read picture ({e})") from None
        if self.augment is not None:
            img = self.augment(img, rng if rng is not None else self.rng(j))
        x = encode_static(img, self.cfg.T, self.hw, mode=self.cfg.static_encoding)
        return np.asarray(x, dtype=np.float32)

    def _picture(self, j: int) -> np.ndarray:
        return load_picture(self._load, self.items[j])

    def _no_planes(self) -> DatasetError:
        return DatasetError(
            "static_encoding 'sim' gives full (T, 2, H, W) frames, not planes: use encode_many"
        )

    def plane(self, j: int) -> np.ndarray:
        """The (H, W) plane that `encode(j)` repeats over T and both channels (no augmentation)."""
        from tmkt.static.encode import encode_static

        if self.sim is not None:
            raise self._no_planes()

        x = encode_static(self._picture(j), 1, self.hw, mode=self.cfg.static_encoding)
        return np.asarray(x[0, 0], dtype=np.float32)

    def open_plane_cache(self) -> frame_cache.FrameCache | None:
        """Open (verifying) or build a `.npy` (P, H, W) of every picture's plane in `cache_dir`.

        Used by `encode_many` (and so by the batched `__getitems__`) without augmentation.
        Identified by the settings, the pictures' refs and labels, the file size and mtime of
        pictures with a path and a hash of the bytes of those without (in-memory pictures).
        None with ``static_encoding: sim`` (no planes; its frame cache opens with the dataset).
        """
        if self.sim is not None:
            return None
        cfg = self.cfg
        h, w = self.hw
        fingerprint, digest = picture_fingerprint(self.items, self._load)
        settings = {
            "kind": "static planes",
            "dataset": cfg.name,
            "split": self.split,
            "static_root": str(cfg.static_root_path.resolve()),
            "size": [h, w],
            "encoding": cfg.static_encoding,
            "options": json.loads(json.dumps(cfg.options, sort_keys=True, default=str)),
            "in_memory_pictures": digest,
            "static_code": static_code_hash(),
        }
        tag = f"{cfg.name}-static-{self.split}-{h}x{w}-{cfg.static_encoding}-P{len(self.items)}"
        path = frame_cache.cache_file(cfg.cache_path, tag, settings["static_root"], fingerprint)
        self.planes = frame_cache.FrameCache(
            path, settings, fingerprint, (len(self.items), h, w), self.plane
        )
        return self.planes

    def encode_many(self, indices: Sequence[int]) -> np.ndarray:
        """`encode(j)` of every j in `indices` (own draws), stacked (B, T, 2, H, W).

        Without augmentation each distinct picture's plane is read from the plane cache (or
        encoded once) and written into the batch in one broadcast.
        """
        idx = [int(j) for j in indices]
        if self.sim is not None and self.augment is None:
            return self.sim.frames_many(idx)
        out = np.empty((len(idx), self.cfg.T, 2, *self.hw), dtype=np.float32)
        if self.augment is not None:
            for k, j in enumerate(idx):
                out[k] = self.encode(j)
            return out
        out[...] = self.planes_many(idx)[:, None, None]
        return out

    def planes_many(self, indices: Sequence[int]) -> np.ndarray:
        """The (B, H, W) planes that `encode_many` (without augmentation) repeats over T and
        both channels: from the plane cache, or each distinct picture encoded once (not with
        ``static_encoding: sim``: a DatasetError)."""
        if self.sim is not None:
            raise self._no_planes()
        idx = [int(j) for j in indices]
        if self.planes is not None:
            return self.planes.rows(idx)
        if not idx:
            return np.empty((0, *self.hw), dtype=np.float32)
        uniq, inverse = np.unique(np.asarray(idx, dtype=np.intp), return_inverse=True)
        return np.stack([self.plane(int(j)) for j in uniq])[inverse.reshape(-1)]

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the random draws (and the `sim` encoding's simulator, per_epoch) for an epoch."""
        self.epoch = int(epoch)
        if self.sim is not None:
            self.sim.set_epoch(epoch)

    def set_draw_seed(self, seed: int) -> None:
        """Seed of the augmentation draws (the training seed; `data.seed` fixes the split)."""
        self.draw_seed = int(seed)
        if self.sim is not None:
            self.sim.set_draw_seed(seed)

    def rng(self, j: int, salt: int = 0) -> np.random.Generator:
        """The generator of picture j in the current epoch."""
        return np.random.default_rng([self.draw_seed, self.epoch, int(j), 1000 + salt])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.encode(j)), self._targets[j]

    def __getitems__(self, indices: list[int]) -> SampleBatch:
        """Pictures `indices` as one stacked batch (torch's DataLoader calls this per batch)."""
        idx = [int(j) for j in indices]
        return SampleBatch((torch.from_numpy(self.encode_many(idx)), _labels(self._targets, idx)))

def _static_augment() -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    from tmkt.static.augment import augment_image

    return augment_image

def build_static(cfg: DataConfig, split: str) -> StaticDataset:
    """Encoded static pictures of a split (the finetune baseline's first phase)."""
    _check_split(split)
    return StaticDataset(prepare(cfg), split)
