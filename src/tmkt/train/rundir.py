"""Run folders: never overwrite a run silently; compare the config a run had with a new one.

- `check_run_dir` (before a run starts): a new run goes into an empty or new folder; a folder
  holding a run needs `resume` (continue it) or `overwrite` (replace it); `--out` may not hold
  the user's `--config`; the folder must be writable.
- `clear_run` (with `overwrite`, once the new run is ready to write): removes the old run's
  files only (checkpoints, metrics, results, plots, TensorBoard events), nothing else.
- `config_diff` / `resume_diff`: the dotted keys whose values differ between two configs; a
  resumed run keeps its checkpoint's settings (`check_resume_config` refuses others), and
  `tmkt experiment` reuses a run only when its config equals the one it would train.
- `pick_resume_checkpoint`: a damaged `last.pt` falls back to a good `best.pt`, saying so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tmkt.train.config import Config, ConfigError

# what a tmkt run writes into its folder (plots: tmkt.train.plots; temporary files of atomic
# writes: checkpoint.save_checkpoint, logging.write_csv, loop._write_results, splits.save_split)
RUN_FILES = frozenset({
    "config.yaml", "metrics.csv", "results.json", "best.pt", "last.pt", "split.json",
    "loss.png", "accuracy.png", "aux_errors.png", "schedule.png",
    "metrics.csv.tmp", "results.json.tmp", "last.pt.damaged",
})
RUN_DIRS = frozenset({"tb"})

# settings that change nothing a run computes (speed, logging, where things are written): a
# finished run is reused, and a run resumed, whatever their values
NO_RESULT_KEYS = (
    "experiment.", "train.out_dir", "train.run_name", "train.progress", "train.tensorboard",
    "train.plots", "train.num_workers", "train.cpu_allocator", "data.cache", "data.cache_dir",
)
# ...and what may also change on --resume: where the data is, which device continues the run
RESUME_FREE_KEYS = (*NO_RESULT_KEYS, "data.root", "data.static_root", "train.device")


class RunDirError(ConfigError):
    """A run folder cannot be used as asked (it holds another run, or cannot be written)."""


class RunInterrupted(RuntimeError):
    """The user stopped a run (Ctrl-C); the message says what was kept and how to continue."""


def is_run_file(p: Path) -> bool:
    """Whether `p` (an entry of a run folder) is something a tmkt run writes."""
    name = p.name
    if p.is_dir():
        return name in RUN_DIRS
    if name in RUN_FILES:
        return True
    # leftovers of interrupted atomic writes: .last.pt.XXXX.tmp, .split.json.PID.tmp
    return name.startswith(".") and name.endswith(".tmp")


PROBE_PREFIX = ".tmkt-probe-"  # `_probe_writable`'s file, there for an instant


def _entries(out: Path) -> list[Path]:
    """What a run folder holds, without the write probes of `check_run_dir`: every DDP rank
    probes the same folder at once, so one rank may see another's probe file."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if not p.name.startswith(PROBE_PREFIX))


def _names(paths: Iterable[Path], n: int = 6) -> str:
    names = [p.name + ("/" if p.is_dir() else "") for p in paths]
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _probe_writable(out: Path) -> None:
    """Create `out` and a temporary file in it (an OSError says why not)."""
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=out)
    os.close(fd)
    os.unlink(tmp)


def check_run_dir(
    out: str | Path,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    config_path: str | Path | None = None,
) -> None:
    """Refuse (RunDirError, naming the folder and the way out) to start a run into `out` when
    it would replace or mix with what is there, or when `out` cannot be written.

    Allowed: a new or empty folder; the folder of the checkpoint being resumed; a folder that
    holds only a tmkt run's files with `overwrite` (`clear_run` then removes them).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run folder {out} is a file, not a folder; choose another --out")
    if config_path is not None:
        cp = Path(config_path).expanduser().absolute()
        if cp.parent == out.expanduser().absolute() and cp.name in RUN_FILES:
            raise RunDirError(
                f"--out {out} would overwrite your --config {config_path} (a run writes its "
                f"resolved {cp.name} there); choose another --out"
            )
    try:
        _probe_writable(out)
    except OSError as e:
        raise RunDirError(
            f"cannot write the run folder {out}: {e.strerror or e}; choose another --out"
        ) from None
    entries = _entries(out)
    if not entries:
        return
    if resume is not None:
        ck = Path(resume)
        ck_dir = ck if ck.is_dir() else ck.parent
        if ck_dir.resolve() == out.resolve():
            return
    foreign = [p for p in entries if not is_run_file(p)]
    if overwrite:
        if foreign:
            raise RunDirError(
                f"--overwrite replaces a tmkt run only, but {out} also holds {_names(foreign)} "
                "(not written by tmkt); choose another --out"
            )
        return
    if len(foreign) == len(entries):
        raise RunDirError(
            f"run folder {out} is not empty and holds no tmkt run ({_names(entries)}); choose "
            "a new or empty --out"
        )
    raise RunDirError(
        f"run folder {out} already holds a run ({_names(entries)}); pass --resume {out} to "
        "continue it, --overwrite to replace it, or choose another --out"
    )


def clear_run(out: str | Path) -> list[str]:
    """Remove a previous run's files from `out` (only what `is_run_file` names); their names."""
    removed = []
    for p in _entries(Path(out)):
        if not is_run_file(p):
            continue
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(p.name)
    return removed


# --- config comparison ---------------------------------------------------------------------


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections -> {"section.key": value} (mapping values such as data.options stay
    whole)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not prefix:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _normal(cfg: Config | dict[str, Any] | str) -> dict[str, Any]:
    """A config as a flat dict with every current key (old configs get the defaults)."""
    if isinstance(cfg, str):
        cfg = Config.from_json(cfg)
    elif isinstance(cfg, dict):
        cfg = Config.from_dict(cfg)
    return flatten(cfg.to_dict())


def config_diff(
    old: Config | dict[str, Any] | str,
    new: Config | dict[str, Any] | str,
    free: tuple[str, ...] = NO_RESULT_KEYS,
) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) of every setting that differs, except the `free` keys
    (a key ending in "." frees a whole section)."""
    a, b = _normal(old), _normal(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == f or (f.endswith(".") and key.startswith(f)) for f in free):
            continue
        if a.get(key) != b.get(key):
            out.append((key, a.get(key), b.get(key)))
    return out


def format_diff(diff: list[tuple[str, Any, Any]], n: int = 8) -> str:
    """`key old -> new` items joined by "; " (the first `n`)."""
    shown = [f"{k} {a!r} -> {b!r}" for k, a, b in diff[:n]]
    more = f"; and {len(diff) - n} more" if len(diff) > n else ""
    return "; ".join(shown) + more


def check_resume_config(saved: str | dict[str, Any], cfg: Config, path: str | Path) -> None:
    """A resumed run continues its checkpoint's settings: any other value (an optimiser
    override, another network or T) is refused, so the run folder always describes what ran."""
    diff = config_diff(saved, cfg, RESUME_FREE_KEYS)
    if diff:
        raise ConfigError(
            f"--resume {path}: a resumed run keeps the checkpoint's settings, but these differ: "
            f"{format_diff(diff)}; drop those overrides to continue the run, or start a new "
            "run with them (another --out, or --overwrite)"
        )


# --- resuming from a damaged checkpoint ----------------------------------------------------


def pick_resume_checkpoint(path: str | Path, log: Callable[[str], None]) -> Path:
    """The checkpoint to resume from: `path` (a run folder means its last.pt), or, when that
    last.pt is damaged or missing, the run's best.pt if it loads (`log` says so): best.pt holds
    the same full state at an earlier epoch, so training redoes the epochs after it."""
    from tmkt.train.checkpoint import CheckpointError, load_checkpoint

    p = Path(path)
    want = p / "last.pt" if p.is_dir() else p
    try:
        load_checkpoint(want)
        return want
    except CheckpointError as e:
        first_error = e
    other = want.parent / "best.pt"  # the same full state, saved at an earlier epoch
    if want.name == "last.pt" and other.is_file():
        try:
            st = load_checkpoint(other)
        except CheckpointError:
            raise first_error from None
        kept = want.with_name(want.name + ".damaged")
        log(f"tmkt train: {first_error}; resuming from the previous good checkpoint {other} "
            f"(epoch {st.get('epoch')}) instead; the damaged file is kept as {kept.name}")
        if int(os.environ.get("RANK", 0)) != 0:  # rank 0 replaces the file
            return other
        if want.is_file():
            os.replace(want, kept)
        fd, tmp = tempfile.mkstemp(prefix=f".{want.name}.", suffix=".tmp", dir=want.parent)
        os.close(fd)
        shutil.copyfile(other, tmp)
        os.replace(tmp, want)  # last.pt = that state again: the run folder stays complete
        return want
    raise first_error


# --- paths and interruptions ---------------------------------------------------------------

PATH_KEYS = ("root", "static_root", "cache_dir", "split_file")


def absolute_paths(cfg: Config) -> Config:
    """`cfg` with relative data paths made absolute (from the working directory), so the
    saved config (eval, resume, experiment reuse) works from any other folder."""
    from tmkt.train.config import apply_overrides

    over = {}
    for key in PATH_KEYS:
        v = getattr(cfg.data, key)
        if v is not None and not Path(v).expanduser().is_absolute():
            over[f"data.{key}"] = str(Path(v).expanduser().absolute())
    return apply_overrides(cfg, over) if over else cfg


def interrupted_message(out: str | Path) -> str:
    """What a Ctrl-C left in run folder `out` and how to continue."""
    last = Path(out) / "last.pt"
    if last.is_file():
        return (f"the run in {out} stopped; {last} holds its last finished epoch: continue "
                f"with `tmkt train --resume {out}`")
    return f"the run in {out} stopped before its first epoch ended; nothing to resume there"
