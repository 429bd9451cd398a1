"""`tmkt predict`: classify event recordings with a trained run, as its evaluation does.

Each recording is read with the reader settings of the run's dataset (sensor size, dropping
events outside it where the dataset does), turned into frames with the run's own settings
(`data.T`, `data.size`, `data.binning`, `data.norm`; `tmkt.events.frames.events_to_frames`),
and classified by the event head with the logits averaged over T, as `tmkt eval` does. A run
trained at a fixed `data.size` resizes every recording to it (exact area sums, as training
does; a sensor smaller than that size is refused); a run trained at the native sensor size
(`data.size` unset) refuses recordings of another sensor. Files that cannot be read or framed
are reported by name and skipped; the others are classified.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tmkt.deploy.trained import Trained


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one file, or why it could not be classified."""

    file: str
    top: list[tuple[str, float]] | None
    """(class, probability) pairs, most probable first; None when the file failed."""
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        if self.top is None:
            return {"file": self.file, "error": self.error}
        return {"file": self.file, "top": [{"class": c, "prob": p} for c, p in self.top]}


def event_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to classify: each file as given (read errors are reported per file), and every
    file with a supported event extension under each folder (recursively, sorted, skipping
    hidden folders such as frame caches). No file at all is a ValueError."""
    from tmkt.events.io import READERS

    out: list[Path] = []
    given = list(paths)
    for p in map(Path, given):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.suffix.lower() in READERS and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts[:-1])
            )
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise ValueError(
            f"no event files ({', '.join(sorted(READERS))}) in {', '.join(map(str, given))}"
            if given else "no files or folders given"
        )
    return out


def reader_settings(trained: Trained) -> tuple[tuple[int, int] | None, bool]:
    """(sensor size (W, H) or None for the file's own, clip) with which the run's dataset read
    its recordings: N-MNIST 34x34, CIFAR10-DVS 128x128, N-Caltech101 240x180 (or
    `data.options.sensor_size`) dropping events outside it, `folder` its `sensor_size` and
    `clip_events` options; other datasets (simulated ones) each file's own sensor."""
    data = trained.cfg.data
    opt = data.options or {}
    sensor = opt.get("sensor_size")
    sensor = (int(sensor[0]), int(sensor[1])) if sensor is not None else None
    if data.name == "nmnist":
        from tmkt.datasets.nmnist import SENSOR_SIZE

        return SENSOR_SIZE, False
    if data.name == "cifar10dvs":
        from tmkt.datasets.cifar10dvs import SENSOR_SIZE as CIFAR_SENSOR

        return CIFAR_SENSOR, False
    if data.name == "ncaltech101":
        from tmkt.datasets.ncaltech101 import SENSOR_SIZE as CALTECH_SENSOR

        return sensor or CALTECH_SENSOR, True
    if data.name == "folder":
        return sensor, bool(opt.get("clip_events", False))
    return None, False


def recording_frames(path: Path, trained: Trained) -> np.ndarray:
    """Float32 frames (T, 2, H, W) of one recording with the run's frame settings."""
    from tmkt.events.frames import events_to_frames
    from tmkt.events.io import EventFileError, read_events

    sensor, clip = reader_settings(trained)
    data = trained.cfg.data
    if sensor is None:
        rec = read_events(path)
    else:
        try:
            rec = read_events(path, sensor_size=sensor, clip=clip)
        except EventFileError as e:
            if "outside" not in str(e):
                raise
            raise EventFileError(
                f"{e} (the run's dataset {data.name!r} reads recordings on a "
                f"{sensor[0]}x{sensor[1]} sensor)"
            ) from None
    _, h, w = trained.in_shape
    width, height = (int(v) for v in rec.sensor_size)
    if data.size is None and (height, width) != (h, w):
        raise ValueError(
            f"sensor {width}x{height} (WxH) differs from the run's {w}x{h}, and the run was "
            "trained at the native sensor size (data.size unset), so it has no resizing rule"
        )
    return events_to_frames(
        rec.events, (width, height), data.T, size=(h, w), binning=data.binning, norm=data.norm
    ).astype(np.float32, copy=False)


class _Recordings(Dataset):
    """Frames of each file, or the reason they could not be made (never raises)."""

    def __init__(self, files: Sequence[Path], trained: Trained) -> None:
        self.files = list(files)
        self.trained = trained

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, recording_frames(self.files[i], self.trained), None
        except Exception as e:  # noqa: BLE001 - any failure of one file is reported, not raised
            return i, None, _reason(e, self.files[i])


def _reason(e: Exception, path: Path) -> str:
    """One line: the error's message without a repeated file name."""
    msg = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.strerror:
        msg = e.strerror
    for prefix in (f"{path}: ", f"{path}:"):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _collate(batch: list) -> list:
    return batch


@torch.no_grad()
def predict(
    trained: Trained,
    files: Sequence[Path],
    *,
    top_k: int = 1,
    batch_size: int = 32,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> Iterator[Prediction]:
    """Top-k predictions for each file, in order, streamed batch by batch (frames are decoded
    by `workers` loader processes; 0 = in this process). `progress`: a tqdm bar on stderr
    (None: only when stderr is a terminal)."""
    from tqdm import tqdm

    if top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    k = min(top_k, len(trained.classes))
    device = torch.device(device)
    model = trained.model.to(device).eval()
    loader = DataLoader(_Recordings(files, trained), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_collate)
    bar = tqdm(total=len(files), unit="file", disable=None if progress is None else not progress,
               desc="predict", leave=False)
    try:
        for batch in loader:
            good = [(i, x) for i, x, _ in batch if x is not None]
            probs: dict[int, torch.Tensor] = {}
            if good:
                x = torch.from_numpy(np.stack([f for _, f in good])).to(device)
                logits = model(x.transpose(0, 1)).logits_evt.float().mean(0)
                p = logits.softmax(dim=1).cpu()
                probs = {i: p[j] for j, (i, _) in enumerate(good)}
            for i, _, err in batch:
                name = str(files[i])
                if err is not None:
                    yield Prediction(name, None, err)
                    continue
                val, idx = probs[i].topk(k)
                yield Prediction(name, [(trained.classes[int(c)], float(v))
                                        for v, c in zip(val, idx, strict=True)])
            bar.update(len(batch))
    finally:
        bar.close()
