"""Fault injection (issue 15): every way a user could get a plausible number from wrong input,
or lose a run, must end in one clear line and exit status 2 (or keep the user's files).

Trainer runs use the fake data and network of `train_fakes` (patched in for the CLI's defaults)
unless a case is about the data itself: those use a few real N-MNIST recordings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from train_fakes import fake_data_fn, fake_model_fn

import tmkt.train.loop as loop
from tmkt.cli import main
from tmkt.train import checkpoint as ck
from tmkt.train.config import ConfigError, load_config

FAKE_CFG = {
    "data": {"T": 4},
    "method": {"name": "dvs"},
    "optim": {"lr": 0.01, "epochs": 2, "batch_size": 8, "warmup_epochs": 1},
    "train": {"device": "cpu", "progress": False, "tensorboard": False, "plots": False},
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The CLI's trainer on fake data and a fake network; returns a config file for them."""
    monkeypatch.setattr(loop, "default_data_fn", fake_data_fn)
    monkeypatch.setattr(loop, "default_model_fn", fake_model_fn())
    cfg = tmp_path / "cfg" / "fake.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump(FAKE_CFG))
    return cfg


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    """(exit status, stderr) of `tmkt argv`."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- case 2: run folders are never overwritten silently ------------------------------------


def test_second_run_into_a_run_folder_is_refused(fake: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert _run(capsys, "train", "--config", fake, "--out", run)[0] == 0
    before = _snapshot(run)
    assert {"config.yaml", "last.pt", "results.json", "metrics.csv"} <= set(before)
    rc, err = _run(capsys, "train", "--config", fake, "--out", run, "optim.lr=0.02")
    line = _one_error_line(err)
    assert rc == 2 and f"run folder {run} already holds a run" in line
    assert "--resume" in line and "--overwrite" in line
    assert _snapshot(run) == before  # nothing of the first run touched


def test_overwrite_replaces_the_whole_old_run(fake: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert _run(capsys, "train", "--config", fake, "--out", run, "train.tensorboard=true",
                "train.plots=true")[0] == 0
    assert (run / "tb").is_dir() and (run / "loss.png").is_file()
    rc, _ = _run(capsys, "train", "--config", fake, "--out", run, "--overwrite", "optim.epochs=1")
    assert rc == 0
    assert not (run / "tb").exists() and not list(run.glob("*.png"))  # no stale plots/events
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["epochs"] == 1
    assert json.loads((run / "results.json").read_text())["epochs"] == 1
    assert ck.load_checkpoint(run / "last.pt")["epoch"] == 1


def test_overwrite_keeps_files_tmkt_did_not_write(fake: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert _run(capsys, "train", "--config", fake, "--out", run)[0] == 0
    (run / "notes.txt").write_text("mine")
    before = _snapshot(run)
    rc, err = _run(capsys, "train", "--config", fake, "--out", run, "--overwrite")
    assert rc == 2 and "notes.txt" in _one_error_line(err) and "not written by tmkt" in err
    assert _snapshot(run) == before


def test_out_holding_the_users_config_is_refused(fake: Path, tmp_path: Path, capsys) -> None:
    mine = fake.parent / "config.yaml"
    mine.write_text(fake.read_text() + "# my notes\n")
    for extra in ([], ["--overwrite"]):
        rc, err = _run(capsys, "train", "--config", mine, "--out", fake.parent, *extra)
        assert rc == 2 and "would overwrite your --config" in _one_error_line(err)
    assert mine.read_text().endswith("# my notes\n")
    assert sorted(p.name for p in fake.parent.iterdir()) == ["config.yaml", "fake.yaml"]


def test_run_that_fails_to_start_keeps_the_old_run(fake: Path, tmp_path: Path, capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tmkt.datasets import DatasetError

    run = tmp_path / "run"
    assert _run(capsys, "train", "--config", fake, "--out", run)[0] == 0
    before = _snapshot(run)

    def broken_data(data_cfg, kind, split):  # after the folder checks, before any write
        if split == "train":
            raise DatasetError("data/x.bin: the recording holds no event")
        return fake_data_fn(data_cfg, kind, split)

    monkeypatch.setattr(loop, "default_data_fn", broken_data)
    rc, err = _run(capsys, "train", "--config", fake, "--out", run, "--overwrite")
    assert rc == 2 and "x.bin: the recording holds no event" in _one_error_line(err)
    assert _snapshot(run) == before  # no new config.yaml beside the old run's checkpoints
    rc, err = _run(capsys, "train", "--resume", run, "--overwrite")
    assert rc == 2 and "pass one" in err


# --- case 1: tmkt experiment reuses a run only for the same config --------------------------


def _experiment_cfg(fake: Path) -> Path:
    d = yaml.safe_load(fake.read_text())
    d["experiment"] = {"name": "exp", "methods": ["dvs"], "seeds": [1],
                       "quick": {"optim.epochs": 1, "train.max_steps_per_epoch": 1}}
    p = fake.parent / "exp.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_experiment_reuses_only_runs_of_the_same_config(fake: Path, tmp_path: Path,
                                                        capsys) -> None:
    cfg, out = _experiment_cfg(fake), tmp_path / "exp"
    assert _run(capsys, "experiment", "--config", cfg, "--out", out, "--quick")[0] == 0
    md = (out / "results.md").read_text()
    assert md.startswith("# exp: nmnist, cnn_small, 1 epoch (at most 1 step per epoch)\n")
    quick_run = _snapshot(out / "dvs_s1")
    # the README's flow: --quick, then the full command: the 1-epoch run is not reported as 2
    for over, key in (([], "optim.epochs 1 -> 2"), (["optim.lr=0.02"], "optim.lr"),
                      (["model.name=vgg_snn"], "model.name")):
        rc, err = _run(capsys, "experiment", "--config", cfg, "--out", out, *over)
        line = _one_error_line(err)
        assert rc == 2 and key in line and "--rerun" in line and "dvs_s1" in line
    assert _snapshot(out / "dvs_s1") == quick_run and (out / "results.md").read_text() == md
    # the same config again: reused, not retrained
    capsys.readouterr()
    assert main(["experiment", "--config", str(cfg), "--out", str(out), "--quick"]) == 0
    assert "dvs seed 1: reusing" in capsys.readouterr().out
    assert _snapshot(out / "dvs_s1") == quick_run
    # --rerun retrains it; the header comes from the runs' own configs
    assert _run(capsys, "experiment", "--config", cfg, "--out", out, "--rerun")[0] == 0
    assert (out / "results.md").read_text().startswith("# exp: nmnist, cnn_small, 2 epochs\n")
    res = json.loads((out / "results.json").read_text())
    assert [r["epochs"] for r in res] == [2]
    assert ck.load_checkpoint(out / "dvs_s1" / "last.pt")["epoch"] == 2


# --- case 4: values that break training are refused ------------------------------------------


@pytest.mark.parametrize(("override", "message"), [
    ("optim.grad_clip=-1", "optim.grad_clip must be > 0"),
    ("optim.grad_clip=0", "optim.grad_clip must be > 0"),
    ("optim.min_lr_ratio=-1", "optim.min_lr_ratio must be >= 0 and <= 1"),
    ("optim.lr=inf", "optim.lr must be a finite number"),
    ("optim.lr=.nan", "optim.lr must be a finite number"),
    ("method.beta=-5", "method.beta must be >= 0"),
    ("model.v_threshold=0", "model.v_threshold must be > 0"),
    ("model.tau=0.5", "model.tau must be >= 1"),
    ("method.tet_lambda=2", "method.tet_lambda must be >= 0 and <= 1"),
    ("optim.steps_per_epoch=0", "optim.steps_per_epoch must be >= 1"),
    ("data.max_per_class=0", "DataConfig.max_per_class must be >= 1"),
    ("experiment.budgets=[10,0]", "experiment.budgets: a budget is recordings per class >= 1"),
    ("data.static_sim={seed: -1}", "data.static_sim.seed"),
])
def test_values_that_break_training_are_refused(fake: Path, tmp_path: Path, capsys,
                                                override: str, message: str) -> None:
    rc, err = _run(capsys, "train", "--config", fake, "--out", tmp_path / "run", override)
    assert rc == 2 and message in _one_error_line(err)
    assert not (tmp_path / "run").exists()


# --- case 6: one line and exit 2, not a traceback ---------------------------------------------


def test_no_cuda_is_one_line(fake: Path, tmp_path: Path, capsys,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, err = _run(capsys, "train", "--config", fake, "--out", tmp_path / "r", "train.device=cuda")
    line = _one_error_line(err)
    assert rc == 2 and "train.device=cuda" in line and "no usable CUDA device" in line
    rc, err = _run(capsys, "eval", "--checkpoint", tmp_path / "none.pt", "--device", "cuda")
    line = _one_error_line(err)
    assert rc == 2 and "no usable CUDA device" in line and "train.device" not in line
    assert "--device=cuda" in line and "set --device=cpu or auto" in line


def test_unwritable_out_is_one_line(fake: Path, tmp_path: Path, capsys,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    rc, err = _run(capsys, "train", "--config", fake, "--out", tmp_path / "file" / "run")
    assert rc == 2 and "cannot write the run folder" in _one_error_line(err)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        import os

        if os.geteuid() == 0:  # root writes anyway: make the probe meet what a user would
            import tmkt.train.rundir as rundir

            def denied(out: Path) -> None:
                raise PermissionError(13, "Permission denied", str(out))

            monkeypatch.setattr(rundir, "_probe_writable", denied)
        rc, err = _run(capsys, "train", "--config", fake, "--out", ro / "run")
        line = _one_error_line(err)
        assert rc == 2 and "cannot write the run folder" in line and "Permission denied" in line
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("override", ["model.width=0.5", "model.name=vgg_snn", "data.T=6",
                                      "optim.lr=0.5", "optim.epochs=3"])
def test_resume_refuses_other_settings(fake: Path, tmp_path: Path, capsys,
                                       override: str) -> None:
    """Cases 3 and 6: a resumed run keeps its checkpoint's settings; the record stays true."""
    cfg = load_config(fake)
    run = tmp_path / "run"
    loop.train(cfg, out_dir=run, stop_after_epoch=1)
    before = _snapshot(run)
    rc, err = _run(capsys, "train", "--resume", run, override)
    line = _one_error_line(err)
    key = override.split("=")[0]
    assert rc == 2 and key in line and "keeps the checkpoint's settings" in line
    assert _snapshot(run) == before
    # without overrides it continues, and the record still says what ran
    assert _run(capsys, "train", "--resume", run, "train.progress=false")[0] == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["optim"]["lr"] == 0.01 and saved["data"]["T"] == 4
    assert ck.load_checkpoint(run / "last.pt")["epoch"] == 2


def test_ctrl_c_is_one_line_and_resumable(fake: Path, tmp_path: Path, capsys,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = loop.Trainer.train_epoch

    def stop_in_epoch_2(self, epoch: int):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(loop.Trainer, "train_epoch", stop_in_epoch_2)
    run = tmp_path / "run"
    rc, err = _run(capsys, "train", "--config", fake, "--out", run)
    line = _one_error_line(err)
    assert rc == 2 and "interrupted" in line and f"tmkt train --resume {run}" in line
    assert ck.load_checkpoint(run / "last.pt")["epoch"] == 1
    monkeypatch.setattr(loop.Trainer, "train_epoch", real)
    assert _run(capsys, "train", "--resume", run)[0] == 0
    assert ck.load_checkpoint(run / "last.pt")["epoch"] == 2


# --- case 5: wrong data is refused ------------------------------------------------------------


def _nmnist_root(dst: Path, shared: Path, per_class: int = 3, skip: str | None = None) -> Path:
    """An N-MNIST layout of linked real recordings (and MNIST); `skip` = "Train/5" leaves out
    that class folder."""
    for side in ("Train", "Test"):
        for label_dir in sorted((shared / "N-MNIST" / side).iterdir()):
            if f"{side}/{label_dir.name}" == skip:
                continue
            d = dst / "N-MNIST" / side / label_dir.name
            d.mkdir(parents=True)
            for f in sorted(label_dir.glob("*.bin"))[:per_class]:
                (d / f.name).symlink_to(f)
    (dst / "MNIST").mkdir()
    (dst / "MNIST" / "raw").symlink_to(shared / "MNIST" / "raw")
    return dst


def _nmnist_cfg(tmp_path: Path, root: Path) -> Path:
    d = {"data": {"name": "nmnist", "root": str(root), "T": 3, "cache": False},
         "model": {"name": "cnn_small", "width": 0.25}, "method": {"name": "dvs"},
         "optim": {"lr": 0.01, "epochs": 1, "batch_size": 10, "warmup_epochs": 0},
         "train": {"device": "cpu", "progress": False, "tensorboard": False, "plots": False,
                   "max_steps_per_epoch": 1}}
    p = tmp_path / "nmnist.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_missing_class_folder_is_refused(tmp_path: Path, shared_data: Path, capsys) -> None:
    root = _nmnist_root(tmp_path / "root", shared_data, skip="Train/5")
    rc, err = _run(capsys, "train", "--config", _nmnist_cfg(tmp_path, root), "--out",
                   tmp_path / "run")
    line = _one_error_line(err)
    assert rc == 2 and "['5']" in line and "no event recording in the training split" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_empty_recording_is_refused(tmp_path: Path, shared_data: Path) -> None:
    from tmkt.datasets import DataConfig, DatasetError, build_events

    root = _nmnist_root(tmp_path / "root", shared_data, per_class=2)
    bad = root / "N-MNIST" / "Test" / "3" / "99999.bin"
    bad.write_bytes(b"")
    ds = build_events(DataConfig(name="nmnist", root=root, T=3, cache=False), "test")
    k = [i for i, it in enumerate(ds.items) if it.path == bad]
    assert len(k) == 1
    with pytest.raises(DatasetError, match=r"99999\.bin: .*holds no event \(0 bytes\)"):
        ds.decode(k[0])
    assert ds.decode(0).sum() > 0  # the real recordings still read


def _folder_root(tmp: Path, shared: Path) -> tuple[Path, Path]:
    """`folder` layout: two classes of real N-MNIST recordings, one grey picture each."""
    from PIL import Image

    ev, pics = tmp / "ev", tmp / "pics"
    for c in ("0", "1"):
        (ev / c).mkdir(parents=True)
        (pics / c).mkdir(parents=True)
        for f in sorted((shared / "N-MNIST" / "Train" / c).glob("*.bin"))[:3]:
            (ev / c / f.name).symlink_to(f)
        Image.fromarray(np.full((28, 28), 100 * int(c), np.uint8)).save(pics / c / "a.png")
    return ev, pics


def _decode_all(cfg) -> None:
    from tmkt.datasets import build_events

    ds = build_events(cfg, "train")  # val_fraction = test_fraction = 0: every recording
    for i in range(len(ds)):
        ds.decode(i)


def test_folder_random_bytes_are_refused(tmp_path: Path, shared_data: Path) -> None:
    from tmkt.datasets import DataConfig, DatasetError

    ev, pics = _folder_root(tmp_path, shared_data)
    cfg = DataConfig(name="folder", root=ev, static_root=pics, T=3, size=(34, 34), cache=False,
                     val_fraction=0.0, test_fraction=0.0)
    _decode_all(cfg)  # the real recordings pass
    junk = ev / "1" / "junk.bin"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5 * 4000, np.uint8).tobytes())
    with pytest.raises(DatasetError, match=r"junk\.bin: .*timestamps go backwards"):
        _decode_all(cfg)


def test_folder_events_outside_the_sensor_are_refused(tmp_path: Path, shared_data: Path) -> None:
    from tmkt.datasets import DataConfig, DatasetError
    from tmkt.events.io import read_events

    ev, pics = _folder_root(tmp_path, shared_data)
    rec = read_events(next((ev / "0").iterdir())).events.copy()
    rec["x"][:10] = 60  # 10 events beyond the 34x34 sensor
    np.save(ev / "0" / "wide.npy", rec)
    opts = {"sensor_size": [34, 34]}
    cfg = DataConfig(name="folder", root=ev, static_root=pics, T=3, cache=False, options=opts,
                     val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(DatasetError) as e:
        _decode_all(cfg)
    msg = str(e.value)
    assert "wide.npy" in msg and "10 of" in msg and "34x34 sensor" in msg
    assert "data.options.clip_events" in msg and "clip=True" not in msg
    _decode_all(DataConfig(**{**cfg.to_dict(), "options": {**opts, "clip_events": True}}))


def _flip_in_tensor(path: Path, t: torch.Tensor) -> None:
    """Flip an exponent bit of the first element of `t` where its bytes lie in the file."""
    raw = bytearray(path.read_bytes())
    at = raw.find(t.contiguous().numpy().tobytes())
    assert at >= 0
    raw[at + 3] ^= 0x40  # float32, little endian: the exponent's high bit -> ~1e38 scale
    path.write_bytes(bytes(raw))


def test_bit_flips_in_a_checkpoint_are_caught(fake: Path, tmp_path: Path, capsys) -> None:
    cfg = load_config(fake, ["optim.epochs=3"])
    run = tmp_path / "run"
    loop.train(cfg, out_dir=run)
    last = ck.load_checkpoint(run / "last.pt")
    weight = last["model"]["fc.weight"]
    _flip_in_tensor(run / "last.pt", weight)
    raw = torch.load(run / "last.pt", weights_only=True)  # torch itself sees nothing wrong
    assert raw["model"]["fc.weight"].abs().max() > 1e30
    with pytest.raises(ck.CheckpointError, match=r"last\.pt: checksum mismatch"):
        ck.load_checkpoint(run / "last.pt")
    rc, err = _run(capsys, "eval", "--checkpoint", run / "last.pt")
    assert rc == 2 and "checksum mismatch" in _one_error_line(err)
    # --resume falls back to the previous good checkpoint, saying so
    best_epoch = ck.load_checkpoint(run / "best.pt")["epoch"]
    rc, err = _run(capsys, "train", "--resume", run)
    assert rc == 0 and "checksum mismatch" in err
    assert f"resuming from the previous good checkpoint {run / 'best.pt'} (epoch {best_epoch})" \
        in err
    fixed = ck.load_checkpoint(run / "last.pt")
    assert fixed["epoch"] == 3 and fixed["model"]["fc.weight"].abs().max() < 100
    assert (run / "last.pt.damaged").is_file()  # the evidence is kept


# --- case 7: messages that point the right way ------------------------------------------------


def test_overrides_anywhere_and_relative_root_stored_absolute(
    fake: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rc, err = _run(capsys, "train", "--config", fake, "optim.epochs=1", "--out", "run",
                   "train.seed=7", "--overwrite", "data.root=rel/data")
    assert rc == 0, err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["seed"] == 7 and saved["optim"]["epochs"] == 1
    assert saved["data"]["root"] == str(tmp_path / "rel" / "data")
    with pytest.raises(SystemExit) as e:  # a real unknown option is still refused
        _run(capsys, "train", "--config", fake, "--out", "run2", "--nope")
    assert e.value.code == 2 and "unrecognized arguments: --nope" in capsys.readouterr().err
    assert load_config(None, ["data.size=48"]).data.size == (48, 48)


def test_messages_name_what_a_user_can_set(tmp_path: Path, capsys) -> None:
    rc, err = _run(capsys, "train", "--config", _nmnist_cfg(tmp_path, tmp_path),
                   "data.name=nope", "--out", tmp_path / "run")
    assert rc == 2 and "sim" in err and "digits_sim" in err and "folder" in err
    # a crafted pickle: refused without torch's "weights_only=False" advice
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"format": ck.FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_checkpoint(tmp_path / "evil.pt")
    assert "could run code" in str(e.value) and "weights_only" not in str(e.value)
    with pytest.raises(ConfigError, match="data.size must be a list"):
        load_config(None, ["data.size=abc"])
    # an N-MNIST recording off the sensor: no "pass clip=True" (nothing a user can set)
    from tmkt.events.io import EventFileError, read_events

    t = 1000
    (tmp_path / "off.bin").write_bytes(bytes([40, 3, (1 << 7) | (t >> 16), (t >> 8) & 255,
                                              t & 255]))
    with pytest.raises(EventFileError) as e:
        read_events(tmp_path / "off.bin", sensor_size=(34, 34))
    assert "off.bin: 1 of 1 events lie outside the 34x34 sensor" in str(e.value)
    assert "another sensor" in str(e.value) and "clip=True" not in str(e.value)


def test_event_only_method_and_eval_need_no_mnist(tmp_path: Path, shared_data: Path,
                                                  capsys) -> None:
    root = _nmnist_root(tmp_path / "root", shared_data, per_class=2)
    (root / "MNIST" / "raw").unlink()  # N-MNIST only
    cfg = _nmnist_cfg(tmp_path, root)
    rc, err = _run(capsys, "train", "--config", cfg, "--out", tmp_path / "dvs")
    assert rc == 0, err
    rc, err = _run(capsys, "train", "--config", cfg, "--out", tmp_path / "tmkt",
                   "method.name=tmkt")
    assert rc == 2 and "needs the static pictures, but MNIST raw folder not found" in err
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "dvs"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    n_test = len(list((root / "N-MNIST" / "Test").glob("*/*.bin")))
    assert out["n"] == n_test > 10 and out["method"] == "dvs"


def test_another_ranks_write_probe_is_not_a_foreign_file(tmp_path: Path) -> None:
    """DDP ranks probe the run folder at once: a probe file of another rank, present while this
    rank looks, neither refuses a new run nor counts as a file of the user's."""
    from tmkt.train.rundir import PROBE_PREFIX, check_run_dir

    out = tmp_path / "run"
    out.mkdir()
    (out / f"{PROBE_PREFIX}abc123").write_bytes(b"")  # the other rank's, not yet removed
    check_run_dir(out)  # a new run: accepted
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds no tmkt run \(notes\.txt\)"):
        check_run_dir(out)
