"""Command-line interface: `tmkt train | eval | inspect | experiment`.

    tmkt train --config configs/digits_sim_demo.yaml optim.epochs=5 method.name=dvs
    tmkt train --resume runs/tmkt_s42
    tmkt eval --checkpoint runs/tmkt_s42/best.pt --data-root DIR --split test --json
    tmkt inspect recording.bin
    tmkt experiment --config configs/digits_sim_demo.yaml [--quick]
    tmkt gradvar --run runs/tmkt_s42        (tmkt.analysis.gradvar_experiment)

User errors (bad config key, missing file, mismatched checkpoint) print one line and exit 2
(set TMKT_DEBUG=1 for the traceback); a diverged run exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tmkt", description="Train SNNs on event data with knowledge from static images."
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one method on one seed")
    t.add_argument("--config", type=Path, help="YAML config (optional with --resume)")
    t.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="dotted config overrides, e.g. optim.lr=0.01 data.T=10")
    t.add_argument("--resume", type=Path, help="run folder or checkpoint to continue")
    t.add_argument("--out", type=Path, help="run folder (default <train.out_dir>/<method>_s<seed>)")
    t.add_argument("--download", action="store_true",
                   help="fetch the dataset into data.root first (one process, not torchrun)")

    e = sub.add_parser("eval", help="evaluate a checkpoint on event data (event head)")
    e.add_argument("--checkpoint", type=Path, required=True, help="checkpoint or run folder")
    e.add_argument("--dataset", help="dataset name (default: the checkpoint's)")
    e.add_argument("--data-root", type=Path, help="data root (default: the checkpoint's)")
    e.add_argument("--static-root", type=Path, help="static data root (default: the data root)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--cache-dir", type=Path, help="frame cache folder (default: no cache)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    i = sub.add_parser("inspect", help="summarise an event file")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true", help="print one JSON object")

    x = sub.add_parser("experiment", help="methods x seeds from the config; markdown table")
    x.add_argument("--config", type=Path, required=True)
    x.add_argument("overrides", nargs="*", metavar="key.sub=value")
    x.add_argument("--quick", action="store_true", help="apply experiment.quick overrides")
    x.add_argument("--out", type=Path, help="experiment folder")
    x.add_argument("--download", action="store_true", help="fetch the dataset first")

    from tmkt.analysis import gradvar_experiment  # `tmkt gradvar` (its own parser and main)

    gradvar_experiment.add_parser(sub)
    return p


def cmd_train(args: argparse.Namespace) -> int:
    """`tmkt train`."""
    from tmkt.train.checkpoint import load_checkpoint, resolve_checkpoint
    from tmkt.train.config import Config, apply_overrides, load_config
    from tmkt.train.loop import run_dir_for, train

    out = args.out
    if args.resume is not None:
        ckpt = resolve_checkpoint(args.resume)
        if args.config is not None:
            cfg = load_config(args.config, args.overrides)
        else:
            cfg = apply_overrides(Config.from_json(load_checkpoint(ckpt)["config"]),
                                  args.overrides)
        out = out or ckpt.parent
        resume: Path | None = ckpt
    else:
        if args.config is None:
            raise SystemExit("tmkt train: --config is required (or --resume RUN_DIR)")
        cfg = load_config(args.config, args.overrides)
        resume = None
    out = out or run_dir_for(cfg)
    if args.download:
        _download(cfg)
    result = train(cfg, out_dir=out, resume=resume)
    if result.test is not None:
        print(
            f"{cfg.method.name} seed {cfg.train.seed}: test top-1 {100 * result.test['top1']:.2f}% "
            f"(best-on-val epoch {result.best_epoch}), last epoch "
            f"{100 * result.test_last['top1']:.2f}%  ->  {out}/results.json"
        )
    return 0


def _download(cfg: Any) -> None:
    """Fetch `cfg.data.name` into `cfg.data.root` (rank 0 only under torchrun)."""
    if int(os.environ.get("RANK", 0)) != 0:
        return
    from tmkt.datasets import download

    for path in download(cfg.data.name, cfg.data.root):
        print(f"downloaded {path}")


def cmd_eval(args: argparse.Namespace) -> int:
    """`tmkt eval`: checkpoint on any data root in the dataset's layout."""
    import torch
    from torch.utils.data import DataLoader

    from tmkt.allocator import set_cpu_allocator
    from tmkt.datasets import DataConfig, build_events
    from tmkt.train.checkpoint import load_checkpoint
    from tmkt.train.config import Config
    from tmkt.train.distributed import DistInfo, resolve_device
    from tmkt.train.evaluate import evaluate
    from tmkt.train.loop import dataset_meta, default_model_fn

    device = resolve_device(args.device, DistInfo())
    st = load_checkpoint(args.checkpoint if args.checkpoint.is_file()
                         else args.checkpoint / "best.pt")
    cfg = Config.from_json(st["config"])
    set_cpu_allocator(cfg.train.cpu_allocator)  # as the run was trained
    d = cfg.data.to_dict()
    if args.dataset is not None:
        d["name"] = args.dataset
    if args.data_root is not None:
        d["root"] = str(args.data_root)
        d["static_root"] = None
    if args.static_root is not None:
        d["static_root"] = str(args.static_root)
    d.update(split_file=None, max_per_class=None, cache=args.cache_dir is not None,
             cache_dir=str(args.cache_dir) if args.cache_dir else None)
    data_cfg = DataConfig.from_dict(d)
    ds = build_events(data_cfg, args.split)
    classes, in_shape = dataset_meta(ds)
    if classes != list(st["classes"]):
        raise ValueError(
            f"the checkpoint's {len(st['classes'])} classes do not match the "
            f"dataset's {len(classes)}: checkpoint {st['classes'][:10]}..., dataset "
            f"{classes[:10]}..."
        )
    if tuple(in_shape) != tuple(st["in_shape"]):
        raise ValueError(
            f"input shape {tuple(in_shape)} differs from the checkpoint's "
            f"{tuple(st['in_shape'])} (set the same data.size)"
        )
    model = default_model_fn(cfg.model, len(classes), in_shape).to(device)
    model.load_state_dict(st["model"])
    from tmkt.datasets import fast_collate

    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, collate_fn=fast_collate)
    with torch.no_grad():
        res = evaluate(model, loader, device, classes=classes, firing_rates=True)
    out = {"checkpoint": str(args.checkpoint), "dataset": data_cfg.name,
           "data_root": str(data_cfg.root), "split": args.split, "method": st.get("method"),
           **res}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['dataset']} {args.split}: top-1 {100 * res['top1']:.2f}%  top-5 "
              f"{100 * res['top5']:.2f}%  n={res['n']}")
        for name, r in (res.get("firing_rates") or {}).items():
            print(f"  firing rate {name}: {r:.4f}")
    return 0


def inspect_file(path: Path) -> dict[str, Any]:
    """Event count, sensor size, duration and ON/OFF balance of one recording."""
    from tmkt.events.io import read_events

    rec = read_events(path)
    ev = rec.events
    n = int(len(ev))
    on = int((ev["p"] == 1).sum()) if n else 0
    duration = int(ev["t"].max() - ev["t"].min()) if n else 0
    return {
        "file": str(path),
        "events": n,
        "sensor_size": list(rec.sensor_size) if rec.sensor_size is not None else None,
        "duration_us": duration,
        "t_first_us": int(ev["t"].min()) if n else None,
        "on": on,
        "off": n - on,
        "on_fraction": on / n if n else None,
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    """`tmkt inspect`."""
    info = inspect_file(args.file)
    if args.json:
        print(json.dumps(info))
        return 0
    sensor = "x".join(map(str, info["sensor_size"])) if info["sensor_size"] else "unknown"
    on_frac = info["on_fraction"]
    print(f"{info['file']}\n  events:      {info['events']}\n  sensor (WxH): {sensor}\n"
          f"  duration:    {info['duration_us'] / 1e6:.6f} s\n"
          f"  ON/OFF:      {info['on']}/{info['off']}"
          + (f" ({100 * on_frac:.1f}% ON)" if on_frac is not None else ""))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """`tmkt experiment`."""
    from tmkt.train.config import load_config
    from tmkt.train.experiment import run_experiment

    cfg = load_config(args.config, args.overrides)
    if args.download:
        _download(cfg)
    res = run_experiment(cfg, quick=args.quick, out_dir=args.out)
    if res.runs:
        print(res.table, end="")
        print(f"-> {res.out_dir / 'results.md'}")
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "inspect": cmd_inspect,
            "experiment": cmd_experiment}


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in COMMANDS:
        return COMMANDS[args.command](args)
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one line to stderr and exit with status 2."""
    from tmkt.train.checkpoint import CheckpointError
    from tmkt.train.config import ConfigError
    from tmkt.train.loop import TrainingDiverged

    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except TrainingDiverged as e:
        print(f"tmkt {args.command}: {e}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as e:
        if os.environ.get("TMKT_DEBUG"):
            raise
        print(f"tmkt {args.command}: error: {e}", file=sys.stderr)
        return 2
