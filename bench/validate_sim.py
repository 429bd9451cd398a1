"""Validate the event simulator against the real N-MNIST recordings in shared/data.

For the MNIST images recorded by the 750 real recordings (Train file NNNNN = MNIST train image
NNNNN-1, Test likewise) it compares simulated and real recordings on
(a) events per recording (median of the per-recording ratio sim/real),
(b) ON/OFF balance (median ON fraction, sim and real),
(c) Pearson correlation of the time-integrated (2, 34, 34) count frames, median over recordings
    (also reported: polarities summed, and time-resolved with 10 bins (10, 2, 34, 34)),
(d) sim-to-real top-1: a small CNN trained only on simulated recordings of MNIST training
    images that are no counterpart of any real recording (IDX positions >= 700, i.e. original
    indices >= 1000), tested on all 750 real recordings.

Usage (one CPU thread):
    OMP_NUM_THREADS=1 .venv/bin/python bench/validate_sim.py --out bench/results/validate_sim
    ... --skip-classifier            # (a)-(c) only
    ... --set threshold_on=0.3 ...   # override SimParams fields
Writes <out>/metrics.json and a running log <out>/log.txt.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tmkt.datasets.mnist import read_idx
from tmkt.events.frames import events_to_frames
from tmkt.events.io import read_events
from tmkt.events.sim import SimParams, simulate_batch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SENSOR = (34, 34)


def log(out: Path, msg: str) -> None:
    """Print and append to <out>/log.txt."""
    print(msg, flush=True)
    with open(out / "log.txt", "a") as f:
        f.write(msg + "\n")


def real_recordings(root: Path) -> list[tuple[str, int, int, Path]]:
    """(side, original MNIST index, label, path) of every real recording, sorted by path."""
    out = []
    for side, folder in (("train", "Train"), ("test", "Test")):
        for f in sorted((root / "N-MNIST" / folder).glob("*/*.bin")):
            out.append((side, int(f.stem) - 1, int(f.parent.name), f))
    return out


def mnist(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """IDX images and labels per side (positions, not original indices)."""
    raw = root / "MNIST" / "raw"
    return {
        "train": (
            read_idx(raw / "train-images-idx3-ubyte.gz"),
            read_idx(raw / "train-labels-idx1-ubyte.gz"),
        ),
        "test": (
            read_idx(raw / "t10k-images-idx3-ubyte.gz"),
            read_idx(raw / "t10k-labels-idx1-ubyte.gz"),
        ),
    }


def counterpart(side: str, index: int) -> int:
    """IDX position of original MNIST index `index`: identity below the removed range."""
    limit = 700 if side == "train" else 50
    if index >= limit:
        raise ValueError(f"{side} index {index} is past the removed range; map it explicitly")
    return index


def frames(events: np.ndarray, T: int) -> np.ndarray:
    """(T, 2, 34, 34) float32 count frames."""
    return events_to_frames(events, SENSOR, T).astype(np.float32)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays (0 when either is constant)."""
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def compare(params: SimParams, recs, images, out: Path) -> dict[str, float]:
    """Metrics (a)-(c) over all real recordings."""
    imgs = [images[side][0][counterpart(side, idx)] for side, idx, _, _ in recs]
    labels = [int(images[side][1][counterpart(side, idx)]) for side, idx, _, _ in recs]
    assert labels == [lab for _, _, lab, _ in recs], "MNIST label != N-MNIST folder label"
    t = time.time()
    sims = simulate_batch(imgs, params, seeds=[[idx, side == "test"] for side, idx, _, _ in recs])
    sim_s = time.time() - t
    ratio, on_sim, on_real, corr, corr_sum, corr_t = [], [], [], [], [], []
    for (_, _, _, path), ev in zip(recs, sims, strict=True):
        real = read_events(path, sensor_size=SENSOR).events
        ratio.append(len(ev) / max(1, len(real)))
        on_sim.append(float(ev["p"].mean()) if len(ev) else 0.0)
        on_real.append(float(real["p"].mean()))
        fs, fr = frames(ev, 1)[0], frames(real, 1)[0]
        corr.append(pearson(fs, fr))
        corr_sum.append(pearson(fs.sum(0), fr.sum(0)))
        corr_t.append(pearson(frames(ev, 10), frames(real, 10)))
    res = {
        "n_recordings": len(recs),
        "events_ratio_median": float(np.median(ratio)),
        "events_sim_median": float(np.median([len(e) for e in sims])),
        "on_fraction_sim_median": float(np.median(on_sim)),
        "on_fraction_real_median": float(np.median(on_real)),
        "frame_corr_median": float(np.median(corr)),
        "frame_corr_polarity_summed_median": float(np.median(corr_sum)),
        "frame_corr_T10_median": float(np.median(corr_t)),
        "simulate_seconds": sim_s,
    }
    log(out, json.dumps(res))
    return res


class SmallCNN(nn.Module):
    """A small non-spiking CNN on (T*2, 34, 34) stacked time bins."""

    def __init__(self, in_ch: int, k: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(256, k),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def prep(x: np.ndarray) -> torch.Tensor:
    """(N, T, 2, H, W) counts -> (N, T*2, H, W) log1p inputs."""
    n = x.shape[0]
    return torch.from_numpy(np.log1p(x).reshape(n, -1, *x.shape[-2:]))


def shift(x: torch.Tensor, g: torch.Generator, max_px: int = 2) -> torch.Tensor:
    """Random integer translation per sample (zero fill)."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    d = torch.randint(-max_px, max_px + 1, (x.shape[0], 2), generator=g)
    for i in range(x.shape[0]):
        dy, dx = int(d[i, 0]), int(d[i, 1])
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


def classifier(params: SimParams, recs, images, out: Path, a) -> dict[str, float]:
    """Metric (d): train on simulated MNIST (no counterpart of a real recording), test on real."""
    tr_imgs, tr_labels = images["train"]
    rng = np.random.default_rng(a.seed)
    pool = np.arange(700, len(tr_imgs))  # IDX >= 700 = original >= 1000: no real counterpart
    pick = np.sort(rng.choice(pool, a.n_train, replace=False))
    t = time.time()
    sims = simulate_batch([tr_imgs[i] for i in pick], params, seeds=[[int(i), 7] for i in pick])
    x_tr = np.stack([frames(e, a.T) for e in sims])
    y_tr = torch.as_tensor(tr_labels[pick].astype(np.int64))
    log(out, f"simulated {len(pick)} training images in {time.time() - t:.1f}s")
    x_te = np.stack([frames(read_events(r[3], sensor_size=SENSOR).events, a.T) for r in recs])
    y_te = torch.as_tensor([r[2] for r in recs])
    xt, xe = prep(x_tr), prep(x_te)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    model = SmallCNN(xt.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    steps = a.epochs * int(np.ceil(len(xt) / a.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    res: dict[str, float] = {}
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for b in range(0, len(xt), a.batch):
            idx = perm[b : b + a.batch]
            xb = shift(xt[idx], g, a.shift) if a.shift else xt[idx]
            loss = nn.functional.cross_entropy(model(xb), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(xe[i : i + 250]).argmax(1) for i in range(0, len(xe), 250)])
        acc = float((pred == y_te).float().mean())
        test_side = np.array([r[0] == "test" for r in recs])
        acc_test = float((pred == y_te).float()[torch.from_numpy(test_side)].mean())
        res = {"epoch": ep + 1, "sim_to_real_top1": acc, "top1_real_test_50": acc_test}
        log(out, f"epoch {ep + 1} loss {loss.item():.3f} " + json.dumps(res))
    return res


def parse_set(items: list[str]) -> dict[str, object]:
    """`name=value` pairs -> dict, values parsed as JSON when possible."""
    out: dict[str, object] = {}
    for it in items:
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
        if isinstance(out[k], list):
            out[k] = tuple(tuple(e) if isinstance(e, list) else e for e in out[k])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("bench/results/validate_sim"))
    ap.add_argument("--set", nargs="*", default=[], help="SimParams overrides name=value")
    ap.add_argument("--skip-classifier", action="store_true")
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--shift", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    params = SimParams().replace(**parse_set(a.set))
    log(out=a.out, msg=f"params {json.dumps(params.to_dict())}")
    recs = real_recordings(a.data)
    images = mnist(a.data)
    metrics = {"params": params.to_dict(), "command_args": vars(a) | {"out": str(a.out)}}
    metrics["compare"] = compare(params, recs, images, a.out)
    if not a.skip_classifier:
        metrics["classifier"] = classifier(params, recs, images, a.out, a)
    metrics["command_args"]["data"] = str(a.data)
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))


if __name__ == "__main__":
    main()
