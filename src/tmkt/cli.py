"""Command-line interface: `tmkt train | eval | inspect | experiment`.

    tmkt train --config configs/digits_sim_demo.yaml optim.epochs=5 method.name=dvs
    tmkt train --resume runs/tmkt_s42
    tmkt eval --checkpoint runs/tmkt_s42/best.pt --data-root DIR --split test --json
    tmkt inspect recording.bin
    tmkt experiment --config configs/digits_sim_demo.yaml [--quick]
    tmkt gradvar --run runs/tmkt_s42        (tmkt.analysis.gradvar_experiment)
    tmkt predict --checkpoint runs/tmkt_s42 recordings/ [--top-k 3] [--json]   (tmkt.deploy)
    tmkt export --checkpoint runs/tmkt_s42 --format nir --out model.nir
    tmkt simulate --preset ncaltech101 --images caltech101/ --out sim/Caltech101

User errors (bad config key or value, missing or damaged file, mismatched checkpoint, a run
folder that holds another run, no CUDA device) print one line and exit 2, as does Ctrl-C
(set TMKT_DEBUG=1 for the traceback); a diverged run exits 1. docs/errors.md lists them.
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
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in the run folder (else a non-empty run "
                        "folder is refused unless --resume continues its run)")

    e = sub.add_parser("eval", help="evaluate a checkpoint on event data (event head)")
    e.add_argument("--checkpoint", type=Path, required=True, help="checkpoint or run folder")
    e.add_argument("--dataset", help="dataset name (default: the checkpoint's; another "
                   "dataset is scored on its own split, rebuilt from the config)")
    e.add_argument("--data-root", type=Path, help="data root (default: the checkpoint's)")
    e.add_argument("--static-root", type=Path, help="static data root (default: the data root)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="split to score, whole (data.max_per_class is not applied)")
    es = e.add_mutually_exclusive_group()
    es.add_argument("--split-file", type=Path, metavar="PATH",
                    help="split JSON to score (default: the run folder's split.json, i.e. the "
                         "split the run was trained with; else the config's data.split_file)")
    es.add_argument("--rebuild-split", action="store_true",
                    help="ignore split files: rebuild the split from the config (data.seed, "
                         "fractions) on the data root")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--cache-dir", type=Path, help="frame cache folder (default: no cache)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--energy", action="store_true",
                   help="also count operations per layer (SynOps, MACs) and estimate energy "
                        "(docs/deploy.md)")
    e.add_argument("--pj-mac", type=float, default=4.6, help="pJ per MAC (default 4.6, 45 nm)")
    e.add_argument("--pj-ac", type=float, default=0.9,
                   help="pJ per accumulate (default 0.9, 45 nm)")

    i = sub.add_parser("inspect", help="summarise an event file")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true", help="print one JSON object")

    x = sub.add_parser("experiment", help="methods x seeds from the config; markdown table")
    x.add_argument("--config", type=Path, required=True)
    x.add_argument("overrides", nargs="*", metavar="key.sub=value")
    x.add_argument("--quick", action="store_true", help="apply experiment.quick overrides")
    x.add_argument("--out", type=Path, help="experiment folder")
    x.add_argument("--download", action="store_true", help="fetch the dataset first")
    x.add_argument("--rerun", action="store_true",
                   help="retrain (replacing them) runs whose folder holds a run of another "
                        "config; without it such runs stop the experiment")

    from tmkt.analysis import gradvar_experiment  # `tmkt gradvar` (its own parser and main)

    gradvar_experiment.add_parser(sub)
    from tmkt.deploy import cli as deploy_cli  # `tmkt predict`, `tmkt export`

    deploy_cli.add_parsers(sub)
    from tmkt.events import simulate_dataset  # `tmkt simulate` (its own parser and command)

    simulate_dataset.add_parser(sub)
    return p


def cmd_train(args: argparse.Namespace) -> int:
    """`tmkt train`: a new run into an empty folder, `--resume` (same settings) or
    `--overwrite` (replacing the run there)."""
    from tmkt.train.checkpoint import load_checkpoint
    from tmkt.train.config import Config, ConfigError, apply_overrides, load_config
    from tmkt.train.loop import run_dir_for, train
    from tmkt.train.rundir import (
        RunDirError,
        absolute_paths,
        check_run_dir,
        interrupted_message,
        pick_resume_checkpoint,
    )

    out = args.out
    if args.resume is not None:
        if args.overwrite:
            raise RunDirError("--resume continues a run, --overwrite replaces one: pass one")
        ckpt = pick_resume_checkpoint(args.resume, lambda m: print(m, file=sys.stderr))
        if args.config is not None:
            cfg = load_config(args.config, args.overrides)
        else:
            cfg = apply_overrides(Config.from_json(load_checkpoint(ckpt)["config"]),
                                  args.overrides)
        out = out or ckpt.parent
        resume: Path | None = ckpt
    else:
        if args.config is None:
            raise ConfigError("--config is required (or --resume RUN_DIR)")
        cfg = load_config(args.config, args.overrides)
        resume = None
    cfg = absolute_paths(cfg)  # the run folder must work from any working directory
    out = out or run_dir_for(cfg)
    check_run_dir(out, resume=resume, overwrite=args.overwrite, config_path=args.config)
    if args.download:
        _download(cfg)
    try:
        result = train(cfg, out_dir=out, resume=resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(interrupted_message(out)) from None
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
    """`tmkt eval`: checkpoint on any data root in the dataset's layout.

    Scores the split the run was trained with (the run folder's split.json; refs are relative
    to the data root, so another copy of the dataset gets the same recordings, and those of the
    split missing there are left out and counted), unless `--split-file` or `--rebuild-split`
    says otherwise; another `--dataset` gets its own rebuilt split. The whole split is scored:
    `data.max_per_class` (the training split's event budget) is not applied."""
    import dataclasses

    import torch
    from torch.utils.data import DataLoader

    from tmkt.allocator import set_cpu_allocator
    from tmkt.datasets import DataConfig, DatasetError, EventDataset, load_split, prepare
    from tmkt.datasets.splits import check_eval_split, restrict_events
    from tmkt.train.checkpoint import load_checkpoint
    from tmkt.train.config import Config
    from tmkt.train.distributed import DistInfo, resolve_device
    from tmkt.train.evaluate import evaluate
    from tmkt.train.loop import dataset_meta, default_model_fn

    device = resolve_device(args.device, DistInfo(), setting="--device")
    ckpt = args.checkpoint if args.checkpoint.is_file() else args.checkpoint / "best.pt"
    st = load_checkpoint(ckpt)
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
    run_split = ckpt.parent / "split.json"
    split_path: Path | None = None
    if args.split_file is not None:
        split_path, source = args.split_file, "--split-file"
    elif args.rebuild_split:
        source = "rebuilt (--rebuild-split)"
    elif d["name"] != cfg.data.name:
        source = f"rebuilt: the run's split is of dataset {cfg.data.name!r}, not {d['name']!r}"
    elif run_split.is_file():
        split_path, source = run_split, "the run's split"
    elif cfg.data.split_file is not None:
        split_path = Path(cfg.data.split_file)
        source = f"the config's data.split_file: {run_split} not found (older run)"
    else:
        source = f"rebuilt: {run_split} not found (older run)"
    if split_path is None:
        source += f", data.seed={d['seed']}"
    d.update(split_file=str(split_path) if split_path is not None else None, max_per_class=None,
             cache=args.cache_dir is not None,
             cache_dir=str(args.cache_dir) if args.cache_dir else None)
    data_cfg = DataConfig.from_dict(d)
    missing: list[str] = []
    if split_path is not None:
        if not split_path.is_file():
            raise DatasetError(f"split file not found: {split_path}")
        check_eval_split(load_split(split_path), split_path, dataset=data_cfg.name,
                         name=args.split)
    prep = prepare(data_cfg)
    if split_path is not None:  # a copy of the dataset may hold part of the split
        split, missing = restrict_events(prep.split, args.split, prep.events_by_ref)
        if not split.event_refs(args.split):
            raise DatasetError(
                f"none of the {len(missing)} {args.split} recordings of split file {split_path} "
                f"are under {data_cfg.root} (e.g. {missing[0]}): another dataset? "
                "--rebuild-split splits the data found there"
            )
        prep = dataclasses.replace(prep, split=split)
    ds = EventDataset(prep, args.split)
    classes, in_shape = dataset_meta(ds)
    if classes != list(st["classes"]):
        raise ValueError(
            f"the checkpoint's {len(st['classes'])} classes do not match the "
            f"dataset's {len(classes)}: checkpoint {st['classes'][:10]}..., dataset "
            f"{classes[:10]}..."
        )
    if tuple(in_shape) != tuple(st["in_shape"]):
        raise ValueError(
            f"input shape {tuple(in_shape)} of the data under {data_cfg.root} differs from the "
            f"checkpoint's {tuple(st['in_shape'])} (data.size={cfg.data.size} in its run): "
            "recordings of another sensor size than the run was trained on"
        )
    model = default_model_fn(cfg.model, len(classes), in_shape).to(device)
    model.load_state_dict(st["model"])
    from tmkt.datasets import fast_collate

    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, collate_fn=fast_collate)
    from contextlib import nullcontext

    from tmkt.deploy.energy import OpCounter, format_report  # --energy: counted in this pass

    ops = OpCounter(model) if args.energy else None
    with torch.no_grad(), ops or nullcontext():
        res = evaluate(model, loader, device, classes=classes, firing_rates=True)
    if ops is not None:
        res["energy"] = ops.report(pj_mac=args.pj_mac, pj_ac=args.pj_ac)
    out = {"checkpoint": str(args.checkpoint), "dataset": data_cfg.name,
           "data_root": str(data_cfg.root), "split": args.split, "method": st.get("method"),
           "split_file": str(split_path) if split_path is not None else None,
           "split_source": source, "missing": len(missing), **res}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['dataset']} {args.split}: top-1 {100 * res['top1']:.2f}%  top-5 "
              f"{100 * res['top5']:.2f}%  n={res['n']}")
        print(f"  split: {split_path if split_path is not None else 'none'} ({source})")
        if missing:
            print(f"  {len(missing)} {args.split} recordings of the split are not under "
                  f"{data_cfg.root}: scored the {res['n']} present")
        for name, r in (res.get("firing_rates") or {}).items():
            print(f"  firing rate {name}: {r:.4f}")
        if ops is not None:
            print(format_report(res["energy"]))
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
    from tmkt.train.rundir import absolute_paths

    cfg = absolute_paths(load_config(args.config, args.overrides))
    if args.download:
        _download(cfg)
    res = run_experiment(cfg, quick=args.quick, out_dir=args.out, rerun=args.rerun)
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

    args = _parse(argv)
    try:
        return _dispatch(args)
    except TrainingDiverged as e:
        print(f"tmkt {args.command}: {e}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, OSError, ValueError) as e:
        if os.environ.get("TMKT_DEBUG"):
            raise
        print(f"tmkt {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if os.environ.get("TMKT_DEBUG"):
            raise
        print(f"tmkt {args.command}: interrupted{': ' + str(e) if str(e) else ''}",
              file=sys.stderr)
        return 2


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse; `key=value` overrides are taken wherever they stand (argparse keeps only the
    first run of positionals, so `--config c a=1 --out d b=2` would refuse `b=2`)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all(
        "=" in x and not x.startswith("-") for x in extra
    ):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _one_line(e: BaseException) -> str:
    """The error's message without tracebacks: an OS error as "file: reason", a DataLoader
    worker's error (which carries the worker's traceback) as the original error's last line."""
    msg = str(e)
    if isinstance(e, OSError) and e.strerror and e.filename:
        msg = f"{e.filename}: {e.strerror}"
    marker = "Original Traceback (most recent call last):"
    if marker in msg:
        msg = msg.split(marker, 1)[1].strip().splitlines()[-1]
    return msg
