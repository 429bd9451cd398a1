"""Frame cache: one `.npy` (N, T, 2, H, W) per (dataset, split, T, size, binning, norm).

Rows are stored as uint8 when every value is an integer in [0, 255] (event counts usually are;
checked after building, exact), else float32. Reads give float32 (uint8 rows read and widened
in one pass, a compiled gather when numba is installed), or the stored dtype on request: the
datasets hand exact uint8 counts on as they are (`DataConfig.frames_dtype`), and the network
widens them on its device.

Next to it, `<file>.json` records the settings, the sample list (refs with file size and mtime),
the shape, the storage dtype, the file size and a blake2b hash of the whole `.npy`. A cache is
used only if all of them match; anything else (other settings or files, truncation, a flipped
byte, a missing or unreadable sidecar) rebuilds it. Writes go to a temp file first, then
`os.replace`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
STORAGE_DTYPES = ("float32", "uint8")
_CHUNK = 1 << 22
BUILD_CHUNK = 64
"""Rows computed per ``compute_many`` call while building (bounds the events held at once)."""


def cache_file(cache_dir: Path, tag: str, root: str, fingerprint: Sequence[Any]) -> Path:
    """`<cache_dir>/<tag>-<hash of root>-<hash of the sample list>.npy`; `tag` is readable.

    The data root's hash keeps roots apart; the sample list's keeps lists apart (e.g. the
    train splits of two split seeds), so concurrent runs never share a file and cannot replace
    each other's cache between its check and its first read.
    """
    root_tag = hashlib.sha256(root.encode()).hexdigest()[:6]
    text = json.dumps(list(fingerprint), sort_keys=True, default=str)
    list_tag = hashlib.sha256(text.encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{tag}-{root_tag}-{list_tag}.npy"


def source_hash(module: Any) -> str:
    """Short hash of a module's source file: a cache key part, so that any change to the code
    that computes the cached values invalidates the cache."""
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """blake2b of a file's bytes."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def check(path: Path, settings: dict[str, Any], fingerprint: Sequence[Any], shape: tuple) -> str:
    """Why the cache at `path` cannot be used ("" if it can)."""
    side = _sidecar(path)
    if not path.is_file() or not side.is_file():
        return "no cache file"
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable sidecar ({e})"
    if meta.get("version") != FORMAT_VERSION or meta.get("settings") != settings:
        return "settings changed"
    if meta.get("fingerprint") != json.loads(json.dumps(list(fingerprint))):
        return "file list changed"
    if list(meta.get("shape", [])) != list(shape) or path.stat().st_size != meta.get("size"):
        return "size or shape mismatch (truncated or stale)"
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        return f"unreadable .npy header ({e})"
    dtype = meta.get("dtype", "float32")  # sidecars before the uint8 rows have no dtype
    if dtype not in STORAGE_DTYPES or arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
        return f"header says {arr.shape} {arr.dtype}, expected {tuple(shape)} {dtype}"
    del arr
    if file_hash(path) != meta.get("hash"):
        return "content hash mismatch (damaged)"
    return ""


def build(
    path: Path,
    settings: dict[str, Any],
    fingerprint: Sequence[Any],
    shape: tuple,
    compute: Callable[[int], np.ndarray],
    progress: Callable[[int], None] | None = None,
    *,
    compute_many: Callable[[range, np.ndarray], None] | None = None,
    chunk: int = BUILD_CHUNK,
) -> None:
    """Write row i = compute(i) for all rows, atomically, with its sidecar.

    With ``compute_many``, rows are computed ``chunk`` at a time straight into the file:
    ``compute_many(range(a, b), rows_a_to_b)`` fills them (equal to what ``compute`` gives).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    side = _sidecar(path)
    side.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape))
        if compute_many is None:
            for i in range(shape[0]):
                out[i] = compute(i)
                if progress is not None:
                    progress(i)
        else:
            for start in range(0, shape[0], chunk):
                rows = range(start, min(start + chunk, shape[0]))
                compute_many(rows, out[rows.start : rows.stop])
                if progress is not None:
                    progress(rows.stop - 1)
        out.flush()
        dtype = _narrow_to_uint8(out, tmp, chunk)
        del out
        meta = {
            "version": FORMAT_VERSION,
            "settings": settings,
            "shape": list(shape),
            "dtype": dtype,
            "size": tmp.stat().st_size,
            "hash": file_hash(tmp),
            "fingerprint": list(fingerprint),
        }
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    side_tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    side_tmp.write_text(json.dumps(meta))
    os.replace(side_tmp, side)


class FrameCache:
    """Opens (verifying) or builds the cache; rows are read through a per-process memory map."""

    def __init__(
        self,
        path: Path,
        settings: dict[str, Any],
        fingerprint: Sequence[Any],
        shape: tuple,
        compute: Callable[[int], np.ndarray],
        compute_many: Callable[[range, np.ndarray], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.reason = check(self.path, settings, fingerprint, shape)
        self.built = bool(self.reason)
        if self.built:
            build(self.path, settings, fingerprint, shape, compute, compute_many=compute_many)
        self._arr: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """The read-only memory map (opened lazily, so worker processes open their own)."""
        if self._arr is None:
            # a plain ndarray view of the map: indexing it skips np.memmap's per-slice overhead
            self._arr = np.load(self.path, mmap_mode="r").view(np.ndarray)
        return self._arr

    @property
    def dtype(self) -> np.dtype:
        """The storage dtype of the rows: uint8 (exact counts) or float32."""
        return self.array.dtype

    def __getitem__(self, i: int) -> np.ndarray:
        return self.row(i)

    def row(self, i: int, widen: bool = True) -> np.ndarray:
        """Row i as a new array: float32, or the storage dtype with ``widen=False``."""
        return np.array(self.array[i], dtype=np.float32 if widen else None)

    def rows(self, indices: Sequence[int] | np.ndarray, widen: bool = True) -> np.ndarray:
        """Rows ``indices`` (in that order, repeats allowed) as one new array: float32, or the
        storage dtype with ``widen=False`` (uint8 counts: a quarter of the bytes to write).

        float32 files (or ``widen=False``): one ``np.take``; uint8 files widened: one gather
        that widens as it copies. Rows are whole contiguous blocks of the file (92 KB of
        float32 for N-MNIST at T = 10), so the order of the reads matters little; one call
        beats a sorted row-by-row copy.
        """
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        arr = self.array
        if arr.dtype == np.float32 or not widen:
            return np.take(arr, idx, axis=0)
        if len(idx) and (idx.min() < -len(arr) or idx.max() >= len(arr)):
            raise IndexError(f"row index out of range for a cache of {len(arr)} rows")
        idx = np.where(idx < 0, idx + len(arr), idx)
        out = np.empty((len(idx), *arr.shape[1:]), dtype=np.float32)
        if len(idx) == 0:
            return out
        kernel = _gather_kernel()
        if kernel is None:
            out[...] = np.take(arr, idx, axis=0)  # uint8 rows, widened on assignment
        else:
            kernel(arr.reshape(len(arr), -1), idx, out.reshape(len(idx), -1))
        return out

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arr"] = None
        return state


def _narrow_to_uint8(out: np.ndarray, tmp: Path, chunk: int) -> str:
    """Rewrite the float32 rows ``out`` (the file ``tmp``) as uint8 if every value is an integer
    in [0, 255], i.e. uint8 holds it exactly; one pass over the rows, given up at the first
    chunk that does not fit. Returns the storage dtype: "uint8" or "float32" (left as it is)."""
    if out.size == 0:
        return "float32"
    narrow = tmp.with_name(tmp.name + ".u8")
    try:
        small = np.lib.format.open_memmap(narrow, mode="w+", dtype=np.uint8, shape=out.shape)
        for a in range(0, len(out), chunk):
            part = np.asarray(out[a : a + chunk])
            if part.min() < 0 or part.max() > 255 or not np.array_equal(part, np.floor(part)):
                return "float32"
            small[a : a + chunk] = part
        small.flush()
        del small
        os.replace(narrow, tmp)
        return "uint8"
    finally:
        narrow.unlink(missing_ok=True)


def _gather_py(src, idx, out):
    """Kernel source (numba): out[k] = float32(src[idx[k]]) for flat rows."""
    for k in range(idx.shape[0]):
        row = src[idx[k]]
        dst = out[k]
        for j in range(row.shape[0]):
            dst[j] = row[j]


def _gather_kernel():
    """The numba-compiled ``_gather_py``, or None (see ``tmkt.events.frames.compiled``)."""
    from tmkt.events.frames import compiled

    return compiled(_gather_py)
