"""After training (tmkt.deploy): `tmkt predict`, operation/energy counts, NIR export.

Two tiny runs are trained on the real N-MNIST slice (cnn_small at 34x34, vgg_snn resized to
17x17; low threshold so every layer spikes). Oracles: the dataset's own frames (predict),
a hand count and spikingjelly's op counters (energy), spikingjelly's NIR importer and
nirtorch's graph interpreter with NIR's LIF equations written out here (export).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tmkt.cli import main
from tmkt.deploy.energy import OpCounter
from tmkt.deploy.nir_export import ExportError, export_nir
from tmkt.deploy.predict import recording_frames
from tmkt.deploy.trained import Trained, load_trained
from tmkt.models import build_model
from tmkt.models.vgg import POOL, PlainSNN
from tmkt.snn.neuron import LIF, LIFConfig
from tmkt.train.checkpoint import save_checkpoint
from tmkt.train.config import Config, apply_overrides
from tmkt.train.loop import train

T = 4


def _train(out: Path, data: Path, model: str, width: float, **extra: object) -> Path:
    cfg = apply_overrides(Config(), {
        "method.name": "dvs", "data.name": "nmnist", "data.root": str(data), "data.T": T,
        "data.max_per_class": 2, "data.cache": False, "model.name": model,
        "model.width": width, "model.v_threshold": 0.1, "optim.epochs": 1,
        "optim.batch_size": 10, "optim.lr": 0.01, "optim.warmup_epochs": 0,
        "train.max_steps_per_epoch": 2, "train.progress": False, "train.device": "cpu",
        "train.tensorboard": False, "train.plots": False, **extra})
    train(cfg, out_dir=out)
    return out


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    return _train(tmp_path_factory.mktemp("cnn"), shared_data, "cnn_small", 0.25)


@pytest.fixture(scope="module")
def vgg_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    return _train(tmp_path_factory.mktemp("vgg"), shared_data, "vgg_snn", 0.125,
                  **{"data.size": [17, 17]})


def _test_files(shared: Path, n: int) -> list[Path]:
    """n real N-MNIST test recordings, spread over the classes."""
    files = sorted((shared / "N-MNIST" / "Test").rglob("*.bin"))
    return files[:: max(1, len(files) // n)][:n]


def _frames(trained: Trained, files: list[Path]) -> torch.Tensor:
    return torch.from_numpy(np.stack([recording_frames(f, trained) for f in files]))


class _Spikes:
    """Captures each LIF layer's output spikes through tmkt's monitor hook."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules() if isinstance(m, LIF)}
        self.spikes: dict[str, torch.Tensor] = {}

    def record(self, lif: LIF, s: torch.Tensor) -> None:
        self.spikes[self.names[lif]] = s.detach().clone()

    def __enter__(self) -> _Spikes:
        for m in self.names:
            m.monitor = self
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.names:
            m.monitor = None


# --- predict ---------------------------------------------------------------------------


def test_predict_matches_the_runs_own_frames_and_names_bad_files(
    vgg_run: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tmkt.datasets import DataConfig, EventDataset, prepare

    trained = load_trained(vgg_run)
    d = trained.cfg.data.to_dict()
    ds = EventDataset(prepare(DataConfig.from_dict(d)), "test")
    idx = list(range(0, len(ds.items), max(1, len(ds.items) // 4)))[:4]
    files = [ds.items[i].path for i in idx]
    ref = torch.from_numpy(np.stack([ds.decode(i) for i in idx]))  # training's frames
    assert ref.shape[-2:] == (17, 17)  # resized from the 34x34 sensor as in training
    torch.testing.assert_close(_frames(trained, files), ref, rtol=0, atol=0)
    with torch.no_grad():
        p = trained.model(ref.transpose(0, 1)).logits_evt.mean(0).softmax(1)
    probs = {f.name: p[j] for j, f in enumerate(files)}
    bad = tmp_path / "broken.bin"
    bad.write_bytes(b"\x00" * 7)  # not a multiple of 5 bytes
    folder = tmp_path / "recs"
    folder.mkdir()
    for f in files[2:]:
        (folder / f.name).symlink_to(f)
    (folder / ".cache").mkdir()  # hidden folders (frame caches) are skipped
    (folder / ".cache" / "x.npy").write_bytes(b"junk")
    capsys.readouterr()
    rc = main(["predict", "--checkpoint", str(vgg_run), str(files[0]), str(bad), str(files[1]),
               str(tmp_path / "missing.bin"), str(folder), "--top-k", "3", "--json",
               "--batch-size", "2", "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 1  # some files failed, the others were classified
    rows = [json.loads(line) for line in cap.out.splitlines()]
    assert [r["file"] for r in rows] == [str(files[0]), str(bad), str(files[1]),
                                         str(tmp_path / "missing.bin"),
                                         *sorted(str(folder / f.name) for f in files[2:])]
    assert "5 bytes per event" in rows[1]["error"] and "no such" in rows[3]["error"]
    assert f"cannot classify {bad}" in cap.err and "4 of 6 files classified" in cap.err
    good = [rows[0], rows[2], rows[4], rows[5]]
    for r in good:
        top = probs[Path(r["file"]).name].topk(3)
        assert [x["class"] for x in r["top"]] == [trained.classes[int(i)] for i in top.indices]
        assert [x["prob"] for x in r["top"]] == pytest.approx(top.values.tolist(), abs=1e-6)
    # the table form, and bad usage
    assert main(["predict", "--checkpoint", str(vgg_run), str(files[0]), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "file\ttop-1 (prob)" and out[1].startswith(f"{files[0]}\t")
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--checkpoint", str(vgg_run), str(tmp_path / "empty")]) == 2
    assert "no event files" in capsys.readouterr().err


def test_predict_refuses_or_resizes_other_sensors(
    cnn_run: Path, vgg_run: Path, fixtures_dir: Path
) -> None:
    ncars = fixtures_dir / "sample_ncars.dat"
    # read on the run's dataset sensor: events outside it are refused, naming the rule
    with pytest.raises(ValueError, match=r"outside the 34x34 sensor.*'nmnist' reads"):
        recording_frames(ncars, load_trained(cnn_run))
    # a run reading each file's own sensor: native size -> refused, fixed size -> resized
    for run, ok in ((cnn_run, False), (vgg_run, True)):
        t = load_trained(run)
        t = dataclasses.replace(t, cfg=copy.deepcopy(t.cfg))
        t.cfg.data.name = "digits_sim"
        if not ok:
            with pytest.raises(ValueError, match=r"differs from the run's 34x34.*native"):
                recording_frames(ncars, t)
            continue
        from tmkt.events.io import read_events

        frames = recording_frames(ncars, t)
        assert frames.shape == (T, 2, 17, 17)
        assert frames.sum() == pytest.approx(len(read_events(ncars).events))  # area sums


# --- operations and energy -------------------------------------------------------------


def test_energy_hand_count() -> None:
    """conv(frames) -> conv(spikes) -> pool -> conv(pooled spikes) -> head, counted by hand."""
    net = PlainSNN((2, 3, POOL, 2), 3, (1, 4, 4), 1.0, LIFConfig(conv_algo="default"), "fold")
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)  # running stats 0 / 1: BN = x / sqrt(1 + eps)
        net.layers[0].conv[0].weight[0, 0, 1, 1] = 1.0  # frame value 2 -> h ~ 1: a spike
        net.layers[1].conv[0].weight[0, 0, 1, 1] = 2.0  # copies those spikes (channel 0)
        net.layers[3].conv[0].weight[0] = 2.0
    net.eval()
    x = torch.zeros(2, 2, 1, 4, 4)  # T=2, two identical samples
    x[0, :, 0, 0, 0] = x[0, :, 0, 0, 1] = x[0, :, 0, 3, 3] = 2.0
    x[1, :, 0, 1, 1] = 2.0
    with OpCounter(net) as ops, _Spikes(net) as cap, torch.no_grad():
        net(x)
    assert [int(cap.spikes[f"layers.{i}.lif"].sum()) for i in (0, 1, 3)] == [8, 8, 8]
    rep = ops.report()
    rows = {r["layer"]: r for r in rep["layers"]}
    # layers.0: frames, 16 positions x 2 out x 1 in x 9 x T=2 MACs
    assert rows["layers.0.conv"] == {
        "layer": "layers.0.conv", "type": "conv3x3", "input": "frames (MACs)",
        "input_rate": None, "dense_macs": 576, "synops": 0, "macs": 576,
        "energy_pj": pytest.approx(4.6 * 576)}
    # layers.1: spikes at corners (0,0),(3,3) reach 4 outputs, edge (0,1) 6, (1,1) 9; x 3 out
    assert rows["layers.1.conv"]["synops"] == (4 + 6 + 4 + 9) * 3
    assert rows["layers.1.conv"]["dense_macs"] == 16 * 3 * 2 * 9 * 2
    assert rows["layers.1.conv"]["input_rate"] == 4 / (2 * 2 * 16)
    # layers.3: pooled 2x2 map, every cell reaches all 4 outputs x 2 out; 4 spikes pooled
    assert rows["layers.3.conv"]["input"] == "pooled spikes (area 4)"
    assert rows["layers.3.conv"]["synops"] == 4 * 4 * 2
    assert rows["layers.3.conv"]["dense_macs"] == 4 * 2 * 3 * 9 * 2
    assert rows["layers.3.conv"]["input_rate"] == 4 / (2 * 3 * 16)
    # head: 4 spikes (all 2x2 positions of channel 0 at step 0) x 3 classes
    assert rows["head_evt"]["synops"] == 12 and rows["head_evt"]["dense_macs"] == 8 * 3 * 2
    assert rows["head_evt"]["input_rate"] == 4 / (2 * 8)
    assert (rep["samples"], rep["T"], rep["dense_macs"], rep["synops"], rep["macs"]) == (
        2, 2, 2784, 113, 576)
    assert rep["energy_pj"] == pytest.approx(4.6 * 576 + 0.9 * 113)
    assert rep["ann_macs"] == 1392 and rep["ann_energy_pj"] == pytest.approx(4.6 * 1392)
    assert rep["dense_energy_pj"] == pytest.approx(4.6 * 2784)
    assert ops.report(pj_mac=1.0, pj_ac=0.0)["energy_pj"] == 576


def test_energy_matches_spikingjelly_op_counters(
    cnn_run: Path, vgg_run: Path, shared_data: Path
) -> None:
    from spikingjelly.activation_based.op_counter import (
        DispatchCounterMode,
        MACCounter,
        SynOpCounter,
    )
    from torch.utils.flop_counter import FlopCounterMode

    def synops(fn) -> int:
        c = SynOpCounter()
        with DispatchCounterMode([c]), torch.no_grad():
            fn()
        return int(c.get_total())

    for run in (cnn_run, vgg_run):
        trained = load_trained(run)
        net = trained.model
        x = _frames(trained, _test_files(shared_data, 6)).transpose(0, 1).contiguous()
        assert not bool(((x == 0) | (x == 1)).all())  # event counts: the first layer's MACs
        inputs: dict[str, torch.Tensor] = {}
        with OpCounter(net) as ops, _Spikes(net) as cap, torch.no_grad():
            hooks = [la.module.register_forward_hook(
                lambda m, a, o, n=la.name, d=inputs: d.__setitem__(n, a[0]))
                for la in ops.layers]
            out = net(x)
            for h in hooks:
                h.remove()
        counted = {la.name: la for la in ops.layers}
        for name, la in counted.items():
            xin = inputs[name]
            if la.source == "frames":
                mc = MACCounter()
                with DispatchCounterMode([mc]), torch.no_grad():
                    F.conv2d(xin.flatten(0, 1), la.module[0].weight, None, 1, 1)
                assert la.dense_macs == mc.get_total() and la.synops == 0
            elif la.pool_area == 1:  # spikes straight from a LIF
                assert la.synops == synops(lambda la=la, xin=xin: la.module(xin)) > 0
            else:  # 2x2 pool folded into the layer: stride-2 layer on the pre-pool spikes
                i = int(name.split(".")[1]) if name != "head_evt" else len(net.layers)
                s = cap.spikes[f"layers.{i - 2}.lif"].flatten(0, 1)
                s = s[..., : s.shape[-2] // 2 * 2, : s.shape[-1] // 2 * 2]
                if name == "head_evt":
                    w = la.module.weight.unflatten(1, (s.shape[1], -1, s.shape[-1] // 2))
                    wf = w.repeat_interleave(2, 2).repeat_interleave(2, 3).flatten(1) / 4
                    torch.testing.assert_close(F.linear(s.flatten(1), wf, la.module.bias),
                                               out.logits_evt.flatten(0, 1))
                    n = synops(lambda s=s, wf=wf, la=la: F.linear(s.flatten(1), wf,
                                                                  la.module.bias))
                else:
                    w = la.module[0].weight
                    wf = w.repeat_interleave(2, 2).repeat_interleave(2, 3) / 4
                    torch.testing.assert_close(F.conv2d(s, wf, None, 2, 2),
                                               la.module[0](F.avg_pool2d(s, 2)))
                    n = synops(lambda s=s, wf=wf: F.conv2d(s, wf, None, 2, 2))
                assert la.synops == n > 0
        # dense MACs: torch's FLOP counter on the whole network (2 FLOPs per MAC; the
        # source head computes as the event head does)
        fc = FlopCounterMode(display=False)
        with fc, torch.no_grad():
            net(x)
        dense = sum(la.dense_macs for la in ops.layers)
        assert fc.get_total_flops() == 2 * (dense + counted["head_evt"].dense_macs)
        # the same model under spikingjelly's SynOpCounter: it counts the layers fed with
        # plain spikes (pooled inputs are not 0/1 for it)
        plain = sum(la.synops for la in ops.layers if la.source == "spikes"
                    and la.pool_area == 1)
        assert synops(lambda net=net, x=x: net(x)) == plain
        rep = ops.report()
        assert rep["synops"] == pytest.approx(sum(la.synops for la in ops.layers) / 6)
        assert rep["energy_pj"] == pytest.approx(4.6 * rep["macs"] + 0.9 * rep["synops"])


def test_eval_energy_cli_and_results_json(
    cnn_run: Path, shared_data: Path, capsys: pytest.CaptureFixture
) -> None:
    test = json.loads((cnn_run / "results.json").read_text())["test"]
    res = test["energy"]  # counted during the final test evaluation of training
    assert res["samples"] == test["n"] > 0 and res["T"] == T
    assert res["energy_pj"] == pytest.approx(4.6 * res["macs"] + 0.9 * res["synops"])
    assert [r["layer"] for r in res["layers"]] == [
        "layers.0.conv", "layers.2.conv", "layers.4.conv", "head_evt"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(cnn_run), "--data-root", str(shared_data),
                 "--split", "val", "--json", "--energy", "--pj-mac", "1", "--pj-ac", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    e = out["energy"]
    assert e["samples"] == out["n"] and e["energy_pj"] == pytest.approx(e["macs"])
    assert e["layers"][0]["macs"] == e["layers"][0]["dense_macs"] == 2 * 8 * 9 * 34 * 34 * T
    assert main(["eval", "--checkpoint", str(cnn_run), "--data-root", str(shared_data),
                 "--split", "val", "--energy"]) == 0
    text = capsys.readouterr().out
    assert "SynOps" in text and "same network as an ANN" in text


# --- NIR export ------------------------------------------------------------------------


def _nir_lif_map(dt: float):
    """nir.LIF -> a module stepping NIR's equation with forward Euler, written from the spec:
    v += dt / tau ((v_leak - v) + r I); z = v > v_threshold; v <- v_reset where z."""
    import nir

    class NirLIF(nn.Module):
        def __init__(self, node: nir.LIF) -> None:
            super().__init__()
            for k in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
                self.register_buffer(k, torch.from_numpy(np.asarray(getattr(node, k))))

        def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
            v = torch.zeros_like(x) if state is None else state
            v = v + dt / self.tau * ((self.v_leak - v) + self.r * x)
            z = (v > self.v_threshold).to(x.dtype)
            return z, torch.where(z.bool(), self.v_reset, v)

    def affine(node: nir.Affine) -> nn.Linear:  # nirtorch 2.6's default drops the bias
        m = nn.Linear(node.weight.shape[1], node.weight.shape[0])
        m.weight.data, m.bias.data = torch.from_numpy(node.weight), torch.from_numpy(node.bias)
        return m

    return {nir.LIF: NirLIF, nir.Affine: affine}


@pytest.mark.parametrize("which", ["cnn", "vgg"])
def test_nir_round_trip_same_spikes_and_predictions(
    which: str, cnn_run: Path, vgg_run: Path, shared_data: Path, tmp_path: Path
) -> None:
    import nir
    import nirtorch
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    run = cnn_run if which == "cnn" else vgg_run
    out = tmp_path / "model.nir"
    assert main(["export", "--checkpoint", str(run), "--format", "nir", "--out", str(out)]) == 0
    trained = load_trained(run)
    net = trained.model
    graph = nir.read(out)
    lifs = [n for n, m in net.named_modules() if isinstance(m, LIF)]
    order, nxt = ["input"], dict(graph.edges)  # a chain: follow the edges from the input
    while order[-1] in nxt:
        order.append(nxt[order[-1]])
    assert len(order) == len(graph.nodes) == len(graph.edges) + 1
    kinds = [type(graph.nodes[k]).__name__ for k in order]
    assert kinds[0] == "Input" and kinds[-3:] == ["Flatten", "Affine", "Output"]
    assert kinds.count("LIF") == len(lifs) and kinds.count("Conv2d") == len(lifs)
    first = graph.nodes[lifs[0].replace(".", "_")]
    assert np.all(first.tau == np.float32(2e-4)) and np.all(first.r == 1)  # tau * dt, R = 1
    assert np.all(first.v_threshold == np.float32(0.1)) and np.all(first.v_reset == 0)
    conv, bn = net.layers[0].conv[0], net.layers[0].bn
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    np.testing.assert_allclose(graph.nodes["layers_0_conv"].weight,
                               (conv.weight.double() * scale[:, None, None, None]).detach(),
                               rtol=1e-6, atol=1e-7)  # BN folded in eval mode
    assert json.loads(graph.metadata["frames"])["T"] == T
    x = _frames(trained, _test_files(shared_data, 10)).transpose(0, 1).contiguous()
    # float64 graph vs the float64 network: same spikes in every layer, same logits
    ref64 = None
    for dtype in (torch.float64, torch.float32):
        g = graph if dtype == torch.float32 else export_nir(net.double(), dtype=np.float64)
        model = net.to(dtype)
        with _Spikes(model) as cap, torch.no_grad():
            ref = model(x.to(dtype)).logits_evt
        sj = import_from_nir(g, dt=1e-4, step_mode="m", dtype=dtype)
        got: dict[str, torch.Tensor] = {}
        for n, m in sj.named_modules():
            if type(m).__name__ == "_NIRStatefulModule":
                m.register_forward_hook(lambda m, a, o, n=n, d=got: d.__setitem__(n, o[0]))
        with torch.no_grad():
            y, _ = sj(x.to(dtype))
        assert set(got) == {n.replace(".", "_") for n in lifs}
        for n in lifs:
            s, s_nir = cap.spikes[n], got[n.replace(".", "_")]
            assert s.sum() > 0
            if dtype == torch.float64:
                assert torch.equal(s, s_nir), n
            else:  # folded float32 weights round differently: a rare flip at most
                assert (s != s_nir).float().mean() <= 1e-4, n
        assert torch.equal(y.mean(0).argmax(1), ref.mean(0).argmax(1))
        if dtype == torch.float64:
            torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)
            ref64 = ref
    # nirtorch's own interpreter, with NIR's LIF equations written out (one sample, unbatched)
    g64 = export_nir(net.double(), dtype=np.float64)
    gm = nirtorch.nir_to_torch(g64, _nir_lif_map(1e-4), dtype=torch.float64)
    for b in range(2):
        state, steps = None, []
        for t in range(T):
            o, state = gm(x[t, b].double(), state)
            steps.append(o)
        torch.testing.assert_close(torch.stack(steps), ref64[:, b], rtol=1e-9, atol=1e-9)


def test_nir_export_refusals_and_per_step_bn(tmp_path: Path, capsys: pytest.CaptureFixture
                                             ) -> None:
    soft = build_model("cnn_small", 10, (2, 34, 34), width=0.125, reset="soft").eval()
    with pytest.raises(ExportError, match=r"layers\.0\.lif: soft reset"):
        export_nir(soft)
    for name in ("resnet18", "resnet19"):
        with pytest.raises(ExportError, match=r"blocks\.0.*residual sums"):
            export_nir(build_model(name, 10, (2, 16, 16), width=0.0625))
    # per-step BN normalises each step with the same running statistics in eval: exported
    a = build_model("cnn_small", 10, (2, 34, 34), width=0.125, bn_mode="per_step").eval()
    b = build_model("cnn_small", 10, (2, 34, 34), width=0.125).eval()
    for m in a.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    b.load_state_dict(a.state_dict())
    ga, gb = export_nir(a), export_nir(b)
    assert all(np.array_equal(ga.nodes[k].weight, gb.nodes[k].weight) for k in ga.nodes
               if hasattr(ga.nodes[k], "weight"))
    y = torch.randn(3, 2, a.layers[0].bn.num_features, 34, 34)
    with torch.no_grad():
        assert torch.equal(a.layers[0].bn(y), b.layers[0].bn(y))
    # CLI: a resnet run's checkpoint is refused in one line (exit 2), a damaged one too
    cfg = apply_overrides(Config(), {"model.name": "resnet19", "model.width": 0.0625})
    net = build_model("resnet19", 10, (2, 16, 16), width=0.0625)
    ck = save_checkpoint({"config": cfg.to_json(), "classes": [str(i) for i in range(10)],
                          "in_shape": [2, 16, 16], "method": "dvs", "model": net.state_dict()},
                         tmp_path / "r19" / "best.pt")
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(ck.parent), "--out", str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SpikingResNet19: blocks.0" in err and "residual" in err
    (tmp_path / "bad.pt").write_bytes(ck.read_bytes()[:500])
    assert main(["export", "--checkpoint", str(tmp_path / "bad.pt"), "--out",
                 str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable tmkt checkpoint" in err
    assert not (tmp_path / "m.nir").exists()
