"""Methods: registry errors, each method lowers its loss, mixing/terms semantics, evaluation."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from train_fakes import FakeOut, FakeSNN

from tmkt.train.config import MethodConfig
from tmkt.train.evaluate import evaluate
from tmkt.train.methods import METHODS, Batch, build_method

ALL = ["dvs", "finetune", "sliding", "tmkt", "tmkt_no_mag", "tmkt_no_mrp", "tmkt_no_cka",
       "tmkt_untruncated"]
T, B, K, HW = 4, 8, 4, (6, 6)


def _batch(seed: int = 0, hw: tuple[int, int] = HW) -> Batch:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(B) % K
    base = torch.zeros(B, 1, 2, *hw)
    for i in range(B):
        base[i, :, :, :, int(y[i])] = 1.0
    static = base.expand(B, T, 2, *hw).clone()
    events = (torch.rand(B, T, 2, *hw, generator=g) < 0.5 * base + 0.1).float()
    return Batch(label=y, events=events, static=static)


def test_registry_lists_all_methods() -> None:
    assert set(ALL) <= set(METHODS.names())
    with pytest.raises(ValueError, match="valid: .*dvs.*tmkt"):
        build_method(MethodConfig(name="nope"), FakeSNN(K, (2, *HW)), T)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("progress", [0.3, 0.9])
def test_each_method_lowers_its_loss(name: str, progress: float) -> None:
    torch.manual_seed(0)
    method = build_method(MethodConfig(name=name), FakeSNN(K, (2, *HW), bn=True), T, epochs=2)
    method.begin_epoch(0 if progress < 0.5 else 1)  # finetune: static phase, then events
    opt = torch.optim.AdamW(method.parameters(), lr=0.02)
    batch = _batch()

    def measure() -> float:
        method.generator.manual_seed(123)  # same mixing draw for a fair comparison
        with torch.no_grad():
            loss, _ = method.loss(batch, progress)
        return float(loss)

    before = measure()
    for step in range(15):
        method.generator.manual_seed(step)
        loss, terms = method.loss(batch, progress)
        assert torch.isfinite(loss)
        assert float(terms["loss"]) == pytest.approx(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = measure()
    assert after < 0.8 * before, (name, before, after)


class Recorder(nn.Module):
    """Wraps a model and records every input it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, []
        self.feature_dim = inner.feature_dim

    def forward(self, x: torch.Tensor) -> Any:
        self.seen.append(x.detach().clone())
        return self.inner(x)


@pytest.mark.parametrize("name", ["sliding", "tmkt", "tmkt_untruncated"])
def test_source_stream_goes_from_static_to_events(name: str) -> None:
    rec = Recorder(FakeSNN(K, (2, *HW)))
    method = build_method(MethodConfig(name=name), rec, T)
    batch = _batch()
    method.loss(batch, 0.0)  # r = 0: pure static source stream
    src, evt = rec.seen
    assert torch.equal(src, batch.static.transpose(0, 1))
    assert torch.equal(evt, batch.events.transpose(0, 1))
    rec.seen.clear()
    method.loss(batch, 1.0)  # r = 1: the source stream is all events
    assert torch.equal(rec.seen[0], batch.events.transpose(0, 1))


def test_tmkt_source_is_truncated_static_then_events() -> None:
    rec = Recorder(FakeSNN(K, (2, *HW)))
    method = build_method(MethodConfig(name="tmkt", schedule="constant", schedule_value=0.5),
                          rec, T)
    batch = _batch()
    method.loss(batch, 0.5)
    src = rec.seen[0].transpose(0, 1)  # [B,T,...]
    is_evt = torch.tensor(
        [[torch.equal(src[b, t], batch.events[b, t]) for t in range(T)] for b in range(B)]
    )
    is_static = torch.tensor(
        [[torch.equal(src[b, t], batch.static[b, t]) for t in range(T)] for b in range(B)]
    )
    assert bool((is_evt | is_static).all())
    for b in range(B):  # never switches back to static once events started
        flags = is_evt[b] & ~is_static[b]
        if flags.any():
            first = int(flags.nonzero()[0])
            assert bool(is_evt[b, first:].all())


def test_terms_compose_the_total() -> None:
    torch.manual_seed(1)
    cfg = MethodConfig(name="tmkt", beta=0.5, lambda_mag=0.3, lambda_mrp=0.2)
    method = build_method(cfg, FakeSNN(K, (2, *HW)), T)
    loss, t = method.loss(_batch(), 0.6)
    expect = t["l_src"] + t["l_evt"] + 0.5 * t["l_dom"] + 0.3 * t["l_mag"] + 0.2 * t["l_mrp"]
    assert float(loss.detach()) == pytest.approx(float(expect), rel=1e-6)
    assert 0.0 <= float(t["mag_err"]) <= 1.0 and 0.0 <= float(t["mrp_err"]) <= 1.0
    assert float(t["r"]) == pytest.approx(0.6**3)


@pytest.mark.parametrize(
    ("name", "has", "lacks"),
    [
        ("sliding", {"l_dom"}, {"l_mag", "l_mrp"}),
        ("tmkt_no_mag", {"l_dom", "l_mrp"}, {"l_mag"}),
        ("tmkt_no_mrp", {"l_dom", "l_mag"}, {"l_mrp"}),
        ("tmkt_no_cka", {"l_mag", "l_mrp"}, {"l_dom"}),
        ("dvs", {"l_evt"}, {"l_src", "l_dom", "l_mag", "l_mrp"}),
    ],
)
def test_ablations_drop_exactly_one_factor(name: str, has: set, lacks: set) -> None:
    method = build_method(MethodConfig(name=name), FakeSNN(K, (2, *HW)), T)
    _, terms = method.loss(_batch(), 0.5)
    assert has <= set(terms) and not (lacks & set(terms))
    assert ("domain" in method.aux) == ("l_dom" in has)


def test_event_weights_are_one_minus_s() -> None:
    torch.manual_seed(2)
    model = FakeSNN(K, (2, *HW))
    method = build_method(MethodConfig(name="sliding"), model, T)
    with torch.no_grad():
        method.aux["domain"].c.copy_(torch.tensor([-20.0, -20.0, 20.0, 20.0]))  # s = 0,0,1,1
    batch = _batch()
    _, terms = method.loss(batch, 0.0)
    out = model(batch.events.transpose(0, 1))
    from tmkt.transfer.losses import tet_loss

    half = tet_loss(out.logits_evt[:2], batch.label) * 2 / 4  # steps 2,3 weigh ~0, still / T
    assert float(terms["l_evt"]) == pytest.approx(float(half), rel=1e-4)


def test_concat_streams_equal_separate_without_bn() -> None:
    torch.manual_seed(3)
    model = FakeSNN(K, (2, *HW), bn=False)
    sep = build_method(MethodConfig(name="tmkt", two_stream="separate"), model, T)
    cat = build_method(MethodConfig(name="tmkt", two_stream="concat"), model, T)
    cat.aux.load_state_dict(sep.aux.state_dict())
    batch = _batch()
    sep.generator.manual_seed(5)
    cat.generator.manual_seed(5)
    l1, _ = sep.loss(batch, 0.5)
    l2, _ = cat.loss(batch, 0.5)
    assert float(l1) == pytest.approx(float(l2), rel=1e-5)


@pytest.mark.parametrize("bn_stats", ["event", "both"])
@pytest.mark.parametrize("name", ["tmkt", "sliding"])
def test_concat_streams_keep_per_stream_bn(name: str, bn_stats: str) -> None:
    """One interleaved batch with per-stream BN statistics gives separate passes' loss, terms,
    gradients and running statistics (a real backbone with BN, float64), whichever stream
    updates the running statistics."""
    from tmkt.models import build_model

    def make(mode: str):
        torch.manual_seed(4)
        model = build_model("cnn_small", K, in_shape=(2, 8, 8), width=0.25).double()
        cfg = MethodConfig(name=name, two_stream=mode, bn_stats=bn_stats)
        m = build_method(cfg, model, T).double().train()
        m.generator.manual_seed(6)
        return m

    batch = _batch(1, (8, 8))
    batch = Batch(label=batch.label, events=batch.events.double(), static=batch.static.double())
    res = {}
    for mode in ("separate", "concat"):
        m = make(mode)
        loss, terms = m.loss(batch, 0.6)
        loss.backward()
        grads = {n: p.grad for n, p in m.named_parameters() if p.grad is not None}
        res[mode] = (loss.detach(), terms, grads, dict(m.model.named_buffers()))
    (l1, t1, g1, b1), (l2, t2, g2, b2) = res["separate"], res["concat"]
    torch.testing.assert_close(l2, l1, rtol=1e-10, atol=1e-12)
    for k in t1:
        torch.testing.assert_close(t2[k].double(), t1[k].double(), rtol=1e-9, atol=1e-12, msg=k)
    assert g1.keys() == g2.keys()
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-8, atol=1e-11, msg=n)
    for n in b1:
        torch.testing.assert_close(b2[n], b1[n], rtol=1e-12, atol=1e-12, msg=n)


def test_two_stream_mode_choice() -> None:
    """auto: separate on the CPU; concat refuses BN layers that pool the streams' statistics."""
    from tmkt.models import build_model

    real = build_model("cnn_small", K, in_shape=(2, 8, 8), width=0.25)
    auto = build_method(MethodConfig(name="tmkt"), real, T)
    assert MethodConfig().two_stream == "auto"
    assert not auto.concat_streams(torch.device("cpu"))
    assert auto.concat_streams(torch.device("cuda"))  # a device type only: nothing runs there
    foreign = build_method(MethodConfig(name="tmkt"), FakeSNN(K, (2, *HW), bn=True), T)
    assert not foreign.concat_streams(torch.device("cuda"))
    cfg = MethodConfig(name="tmkt", two_stream="concat")
    cat = build_method(cfg, FakeSNN(K, (2, *HW), bn=True), T)
    with pytest.raises(ValueError, match=r"concat needs per-stream BN.*bn \(BatchNorm1d\)"):
        cat.loss(_batch(), 0.5)


def test_finetune_phases() -> None:
    """separate (default): a static phase as long as the event phase, then as many event
    epochs as dvs gets; shared (the old recipe): half of the epochs each."""
    m = build_method(MethodConfig(name="finetune"), FakeSNN(K, (2, *HW)), T, epochs=6)
    assert m.phases == [6, 6]
    assert [m.data_kind(e) for e in range(12)] == ["static"] * 6 + ["events"] * 6
    m1 = build_method(MethodConfig(name="finetune", finetune_static_epochs=2),
                      FakeSNN(K, (2, *HW)), T, epochs=6)
    assert m1.phases == [2, 6]
    assert [m1.data_kind(e) for e in range(8)] == ["static"] * 2 + ["events"] * 6
    m0 = build_method(MethodConfig(name="finetune", finetune_static_epochs=0),
                      FakeSNN(K, (2, *HW)), T, epochs=6)
    assert m0.phases == [6] and m0.data_kind(0) == "events"
    old = build_method(MethodConfig(name="finetune", finetune_phases="shared"),
                       FakeSNN(K, (2, *HW)), T, epochs=6)
    assert old.phases == [6]
    assert [old.data_kind(e) for e in range(6)] == ["paired"] * 3 + ["events"] * 3
    m2 = build_method(MethodConfig(name="finetune", finetune_phases="shared",
                                   finetune_static_epochs=1), FakeSNN(K, (2, *HW)), T, epochs=6)
    assert [m2.data_kind(e) for e in range(3)] == ["paired", "events", "events"]
    with pytest.raises(ValueError, match="static"):
        m.begin_epoch(0)
        m.loss(Batch(label=torch.zeros(2, dtype=torch.long), events=torch.zeros(2, T, 2, *HW)), 0)


ABLATIONS = {  # ablation -> the tmkt terms it drops (the mixer ablation drops none)
    "tmkt_no_mag": {"l_mag", "mag_err"},
    "tmkt_no_mrp": {"l_mrp", "mrp_err"},
    "tmkt_no_cka": {"l_dom", "s_mean"},
    "tmkt_untruncated": set(),
}


def _step_terms(name: str, mask: torch.Tensor | None, monkeypatch: pytest.MonkeyPatch):
    """Loss terms, parameters and BN buffers of one step of `name` from seed 7, on one batch
    (with `mask` as every mixer's draw when given)."""
    from tmkt.transfer import tsm

    if mask is not None:
        monkeypatch.setattr(tsm, "sample_mask", lambda *a, **k: mask.clone())
    torch.manual_seed(7)
    m = build_method(MethodConfig(name=name), FakeSNN(K, (2, *HW), bn=True), T)
    params = {n: p.detach().clone() for n, p in m.named_parameters()}
    m.generator.manual_seed(5)
    loss, terms = m.loss(_batch(3), 0.7)
    return loss.detach(), terms, params, {n: b.clone() for n, b in m.named_buffers()}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablations_equal_tmkt_but_for_their_factor(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same batch, same mask, same initial weights: every loss term the factor does not touch
    equals tmkt's, and the total differs by exactly the dropped term."""
    g = torch.Generator().manual_seed(11)
    mask = torch.rand(B, T, generator=g) < 0.5
    ref_loss, ref, ref_params, ref_bufs = _step_terms("tmkt", mask, monkeypatch)
    loss, got, params, bufs = _step_terms(name, mask, monkeypatch)
    dropped = ABLATIONS[name]
    assert set(got) == set(ref) - dropped
    for k in set(got) - {"loss"}:  # the total: below
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0, msg=k)
    for n, p in params.items():  # the ablation's parameters start equal to tmkt's
        assert torch.equal(p, ref_params[n]), n
    assert set(ref_params) - set(params) == {
        n for n in ref_params
        if n.startswith({"tmkt_no_mag": "aux.mag.", "tmkt_no_mrp": "aux.mrp.",
                         "tmkt_no_cka": "aux.domain."}.get(name, "-"))
    }
    for n, b in bufs.items():
        assert torch.equal(b, ref_bufs[n]), n
    cfg = MethodConfig()
    missing = {"tmkt_no_mag": cfg.lambda_mag * ref.get("l_mag", 0),
               "tmkt_no_mrp": cfg.lambda_mrp * ref.get("l_mrp", 0),
               "tmkt_no_cka": cfg.beta * ref.get("l_dom", 0)}.get(name, 0.0)
    torch.testing.assert_close(loss + missing, ref_loss, rtol=1e-6, atol=1e-7)


def test_no_cka_keeps_tmkt_initial_event_weights() -> None:
    """tmkt_no_cka weighs the event stream's TET terms by tmkt's initial 1 - sigmoid(c_0)
    (0.2689 at c_0 = 1); `no_cka_step_weights: none` is the old, unweighted ablation."""
    from tmkt.transfer.losses import tet_loss

    torch.manual_seed(2)
    model = FakeSNN(K, (2, *HW))
    batch = _batch()
    out = model(batch.events.transpose(0, 1))
    plain = tet_loss(out.logits_evt, batch.label)
    w = 1.0 - torch.sigmoid(torch.tensor(1.0))
    assert float(w) == pytest.approx(0.268941, abs=1e-6)
    _, t = build_method(MethodConfig(name="tmkt_no_cka"), model, T).loss(batch, 0.5)
    assert float(t["l_evt"]) == pytest.approx(float(plain * w), rel=1e-5)
    cfg = MethodConfig(name="tmkt_no_cka", no_cka_step_weights="none")
    _, t_old = build_method(cfg, model, T).loss(batch, 0.5)
    assert float(t_old["l_evt"]) == pytest.approx(float(plain), rel=1e-6)


def test_untruncated_mixer_matches_tsm_event_fraction() -> None:
    """The mixer ablation changes the mixer only: the same expected event fraction r_m as TSM
    (SPEC check value T=4, r_m=0.5), but frames mixed independently (it switches back)."""
    from tmkt.transfer import tsm

    g = torch.Generator().manual_seed(0)
    n = 200_000
    a = tsm.sample_mask("tsm", n, 4, 0.5, g)
    b = tsm.sample_mask("untruncated", n, 4, 0.5, g)
    assert float(a.float().mean()) == pytest.approx(0.5, abs=0.005)
    assert float(b.float().mean()) == pytest.approx(0.5, abs=0.005)
    assert not bool((a[:, 1:] < a[:, :-1]).any())  # TSM never returns to static
    assert bool((b[:, 1:] < b[:, :-1]).any())


@pytest.mark.parametrize("mode", ["event", "both"])
def test_bn_stats_which_stream_updates_running_statistics(mode: str) -> None:
    """bn_stats: event leaves the running statistics as the event stream alone moves them;
    both: as the mixed pass then the event pass would (He et al.)."""
    import copy

    torch.manual_seed(9)
    model = FakeSNN(K, (2, *HW), bn=True)
    ref = copy.deepcopy(model)
    m = build_method(MethodConfig(name="tmkt", bn_stats=mode, schedule="constant",
                                  schedule_value=0.0), model, T)  # r = 0: source = static
    batch = _batch()
    m.loss(batch, 0.5)[0].backward()
    if mode == "both":
        ref(batch.static.transpose(0, 1))
    ref(batch.events.transpose(0, 1))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(model.bn, name), getattr(ref.bn, name)), name
    assert not torch.equal(model.bn.running_mean, torch.zeros_like(model.bn.running_mean))


class FixedLogits(nn.Module):
    """Event head: class 0 wins at the last step, class 1 on the time average; the source
    head always says class 2."""

    def forward(self, x: torch.Tensor) -> FakeOut:
        T_, B_ = x.shape[:2]
        evt = torch.zeros(T_, B_, 3)
        evt[:-1, :, 1] = 1.0
        evt[-1, :, 0] = 2.0  # last step: class 0 ahead; average: class 1 (0.8 > 0.4)
        evt[-1, :, 1] = 0.0
        src = torch.zeros(T_, B_, 3)
        src[:, :, 2] = 10.0
        f = torch.zeros(T_, B_, 1)
        return FakeOut(src, evt, f, f)


def test_evaluation_uses_event_head_averaged_over_time() -> None:
    T_ = 5
    x = torch.zeros(6, T_, 2, 2, 2)
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    res = evaluate(FixedLogits(), [(x, y)], classes=["a", "b", "c"])
    assert res["top1"] == pytest.approx(2 / 6)  # class 1 predicted for all: 2 correct
    assert res["per_class"] == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert res["n"] == 6 and res["top5"] == 1.0


def test_mrp_linear_output_recovers_after_an_all_static_phase() -> None:
    """The power-3 schedule gives rho targets ~0 for the first epochs. A sigmoid output trained
    by MSE saturates at 0 there and cannot follow the targets later (its gradient vanishes;
    seen on N-MNIST); the default linear output (`method.mrp_output`) does follow them."""
    from tmkt.transfer.heads import MRPHead
    from tmkt.transfer.losses import mrp_loss

    assert MethodConfig().mrp_output == "linear"
    g = torch.Generator().manual_seed(0)
    feat = torch.rand(4, 64, 256, generator=g)  # [T,B,F], non-negative like pooled spikes
    w = torch.randn(256, generator=g)
    late = torch.sigmoid(6 * (feat.mean(0) @ w - (feat.mean(0) @ w).mean()))  # targets [B]
    errors = {}
    for output in ("linear", "sigmoid"):
        torch.manual_seed(0)
        head = MRPHead(256)
        opt = torch.optim.AdamW(head.parameters(), lr=0.05)
        for step in range(600):
            target = torch.zeros(64) if step < 300 else late
            score = head.logits(feat)
            rho = score if output == "linear" else torch.sigmoid(score)
            loss = mrp_loss(rho, target, "mse")
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            score = head.logits(feat)
            rho = score.clamp(0, 1) if output == "linear" else torch.sigmoid(score)
            errors[output] = float((rho - late).abs().mean())
    assert errors["linear"] < 0.05
    assert errors["sigmoid"] > 0.2  # the saturation the default avoids


def test_uint8_events_and_expanded_static_give_the_same_step() -> None:
    """What the paired datasets deliver (uint8 counts, static as a stride-0 view over T and the
    channels) trains exactly as float32 contiguous batches; `Batch.to` moves the view as one
    frame per sample and expands it again (meta device: no copy of the values needed)."""
    from tmkt.models import build_model

    torch.manual_seed(0)
    B, hw = 4, (16, 16)
    counts = torch.randint(0, 3, (B, T, 2, *hw), dtype=torch.uint8)
    planes = torch.rand(B, 1, 1, *hw)
    view = Batch(label=torch.arange(B) % K, events=counts,
                 static=planes.expand(B, T, 2, *hw))
    dense = Batch(label=view.label, events=counts.float(),
                  static=planes.expand(B, T, 2, *hw).contiguous())
    losses = []
    for batch in (view, dense):
        torch.manual_seed(1)
        method = build_method(MethodConfig(name="tmkt"), build_model("cnn_small", K, (2, *hw)), T)
        method.generator.manual_seed(5)
        loss, _ = method.loss(batch, 0.5)
        loss.backward()
        losses.append((loss.detach(), method.model.layers[0].conv[0].weight.grad))
    assert torch.equal(losses[0][0], losses[1][0])
    torch.testing.assert_close(losses[0][1], losses[1][1], rtol=0, atol=0)
    moved = view.to("meta")
    assert moved.static.shape == view.static.shape and moved.static.stride()[1:3] == (0, 0)
    assert moved.events.dtype == torch.uint8 and moved.events.device.type == "meta"
