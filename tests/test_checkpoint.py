"""Checkpoints: atomic writes, code-free loading, RNG capture/restore."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tmkt.train import checkpoint as ck


def test_save_load_round_trip_and_no_temp_files(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "config": "{}",
             "history": [{"epoch": 1, "val_top1": 0.5, "x": None}]}
    path = ck.save_checkpoint(state, tmp_path / "run" / "last.pt")
    assert sorted(os.listdir(path.parent)) == ["last.pt"]
    back = ck.load_checkpoint(tmp_path / "run")  # a run folder resolves to last.pt
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["epoch"] == 3 and back["history"] == state["history"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ck.save_checkpoint({"epoch": 1}, tmp_path / "last.pt")
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint({"epoch": 2}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["epoch"] == 1


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_loading_cannot_run_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pt"
    torch.save({"format": ck.FORMAT, "x": Evil()}, p)
    with pytest.raises(ck.CheckpointError, match="not a readable"):
        ck.load_checkpoint(p)
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="junk.pt"):
        ck.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ck.CheckpointError, match="format tag"):
        ck.load_checkpoint(tmp_path / "other.pt")


def test_rng_states_restore_every_source(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = ck.rng_state({"tsm": gen})
    ck.save_checkpoint({"rng": state}, tmp_path / "r.pt")

    def draw():
        return (torch.rand(3), np.random.rand(3), np.random.randn(), random.random(),
                torch.rand(2, generator=gen))

    first = draw()
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    gen.manual_seed(99)
    ck.set_rng_state(ck.load_checkpoint(tmp_path / "r.pt")["rng"], {"tsm": gen})
    second = draw()
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]
    assert first[3] == second[3]
    assert torch.equal(first[4], second[4])
