"""Atomic, code-free checkpoints: tensors, numbers, strings, lists and dicts only.

`save_checkpoint` writes a temporary file in the target directory, fsyncs it and `os.replace`s
it into place, so a crash never leaves a half-written file; `load_checkpoint` uses
`torch.load(weights_only=True)`, so loading a checkpoint cannot run code. Each checkpoint
carries a checksum of its contents (every tensor's bytes, dtype and shape, and every other
value), checked on load: a damaged file (e.g. bit flips inside tensor data, which torch loads
without complaint) is a CheckpointError naming it. Checkpoints written before the checksum
existed load unchecked.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "tmkt-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not a tmkt checkpoint."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically write `state` (plus a format tag) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state, CHECKSUM_KEY: state_checksum(state)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def resolve_checkpoint(path: str | Path, name: str = "last.pt") -> Path:
    """A checkpoint file, or `<run dir>/<name>` when given a run directory."""
    p = Path(path)
    if p.is_dir():
        p = p / name
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a tmkt checkpoint safely (`weights_only=True`)."""
    p = resolve_checkpoint(path)
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{p}: not a readable tmkt checkpoint ({_load_reason(e)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a tmkt checkpoint (missing format tag {FORMAT!r})")
    verify_checksum(state, p)
    return state


CHECKSUM_KEY = "checksum"


def state_checksum(state: dict[str, Any]) -> str:
    """blake2b of a checkpoint's contents: each tensor's dtype, shape and bytes, each other
    value's type and repr, in the state's (pickled, so preserved) order; the format tag and
    the checksum itself are left out."""
    h = hashlib.blake2b(digest_size=16)

    def walk(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().to("cpu").contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
            if t.numel():
                h.update(t.view(torch.uint8).numpy())  # the bytes, without a copy
        elif isinstance(obj, dict):
            h.update(b"{%d" % len(obj))
            for k, v in obj.items():
                h.update(repr(k).encode())
                walk(v)
        elif isinstance(obj, (list, tuple)):
            h.update(b"[%d" % len(obj))
            for v in obj:
                walk(v)
        else:
            h.update(f"{type(obj).__name__}:{obj!r};".encode())

    walk({k: v for k, v in state.items() if k not in ("format", CHECKSUM_KEY)})
    return h.hexdigest()


def verify_checksum(state: dict[str, Any], path: str | Path) -> None:
    """CheckpointError naming `path` when the stored checksum does not match the contents."""
    want = state.get(CHECKSUM_KEY)
    if want is None:  # written before checksums existed
        return
    if state_checksum(state) != want:
        raise CheckpointError(
            f"{path}: checksum mismatch: the checkpoint is damaged (its contents changed "
            "after it was written); use another checkpoint of the run or retrain"
        )


def _load_reason(e: Exception) -> str:
    """Why torch could not load a file, without torch's weights_only=False advice (which
    would run the file's code)."""
    if isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e):
        return ("refused: it holds Python objects other than tensors and plain data, which a "
                "tmkt checkpoint never does; loading it could run code")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"damaged or not a checkpoint: {lines[0] if lines else type(e).__name__}"


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """All RNG states as tensors/lists: torch (CPU, CUDA), numpy, python, named generators."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None):
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    for k, g in (generators or {}).items():
        if k in state["generators"]:
            g.set_state(state["generators"][k].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
