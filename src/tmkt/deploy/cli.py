"""`tmkt predict` and `tmkt export` (their parsers and commands; `tmkt.cli` adds them).

    tmkt predict --checkpoint RUN recording.bin folder/ [--top-k 3] [--json]
    tmkt export --checkpoint RUN --format nir --out model.nir [--dt 1e-4]

predict exits 0 when every file was classified, 1 when some could not be read (each named
on stderr; the others are still classified), 2 for bad usage (no files, a bad checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

PREDICT_SOME_FAILED = 1
"""Exit status of `tmkt predict` when some files could not be classified."""


def add_parsers(sub: Any) -> None:
    """Add `predict` and `export` to the `tmkt` subparsers."""
    p = sub.add_parser(
        "predict", help="classify event recordings with a trained run",
        description="Classify event files (any supported format) with a run's checkpoint, its "
        "frame settings and event head (logits averaged over T). Exit status: 0 all "
        "classified, 1 some files could not be read (named on stderr), 2 bad usage.",
    )
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="checkpoint, or run folder (its best.pt)")
    p.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_FOLDER",
                   help="event files, or folders searched recursively for them")
    p.add_argument("--top-k", type=int, default=1, help="classes per file (default 1)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0,
                   help="loader processes decoding files (default 0: this process)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true",
                   help="one JSON object per file and line (JSON Lines), errors included")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_predict)

    x = sub.add_parser(
        "export", help="export a trained network for neuromorphic hardware (NIR)",
        description="Write the event path of a trained vgg_snn / cnn_small (BN folded, LIF, "
        "average pooling, event head) as a NIR graph; docs/deploy.md has the mapping.",
    )
    x.add_argument("--checkpoint", type=Path, required=True,
                   help="checkpoint, or run folder (its best.pt)")
    x.add_argument("--format", default="nir", choices=["nir"])
    x.add_argument("--out", type=Path, required=True, help="output file (e.g. model.nir)")
    x.add_argument("--dt", type=float, default=None,
                   help="seconds per time step: NIR time constants are tau * dt (default 1e-4)")
    x.set_defaults(func=cmd_export)


def cmd_predict(args: argparse.Namespace) -> int:
    """`tmkt predict`: a table (or JSON Lines) on stdout, unreadable files on stderr."""
    from tmkt.deploy.predict import event_files, predict
    from tmkt.deploy.trained import load_trained
    from tmkt.train.distributed import DistInfo, resolve_device

    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.batch_size < 1 or args.workers < 0:
        raise ValueError("--batch-size must be >= 1 and --workers >= 0")
    device = resolve_device(args.device, DistInfo())
    files = event_files(args.paths)
    trained = load_trained(args.checkpoint, device)
    if not args.json:
        print("file\t" + "\t".join(f"top-{i + 1} (prob)" for i in
                                   range(min(args.top_k, len(trained.classes)))))
    failed = 0
    preds = predict(trained, files, top_k=args.top_k, batch_size=args.batch_size,
                    workers=args.workers, device=device,
                    progress=False if args.no_progress else None)
    try:
        for pred in preds:
            if pred.top is None:
                failed += 1
                print(f"tmkt predict: cannot classify {pred.file}: {pred.error}",
                      file=sys.stderr)
            if args.json:
                print(json.dumps(pred.to_dict()), flush=True)
            elif pred.top is not None:
                print(pred.file + "\t" + "\t".join(f"{c} ({p:.4f})" for c, p in pred.top),
                      flush=True)
    except BrokenPipeError:  # the reader stopped (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PREDICT_SOME_FAILED if failed else 0
    print(f"tmkt predict: {len(files) - failed} of {len(files)} files classified"
          + (f", {failed} could not be read" if failed else ""), file=sys.stderr)
    return PREDICT_SOME_FAILED if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    """`tmkt export --format nir`."""
    from tmkt.deploy.nir_export import DT, export_nir, write_nir
    from tmkt.deploy.trained import load_trained

    trained = load_trained(args.checkpoint)
    dt = DT if args.dt is None else args.dt
    data = trained.cfg.data
    meta = {
        "classes": list(trained.classes),
        "model": trained.cfg.model.name,
        "checkpoint": str(trained.path),
        "frames": json.dumps({"T": data.T, "size": list(trained.in_shape[1:]),
                              "binning": data.binning, "norm": data.norm}),
    }
    graph = export_nir(trained.model, dt=dt, metadata=meta)
    out = write_nir(graph, args.out)
    n_lif = sum(type(n).__name__ == "LIF" for n in graph.nodes.values())
    print(f"{trained.cfg.model.name}: {len(graph.nodes)} NIR nodes ({n_lif} LIF layers, "
          f"dt={dt:g} s, input {list(trained.in_shape)} per step, readout: mean over "
          f"T={data.T} steps outside the graph) -> {out}")
    return 0

