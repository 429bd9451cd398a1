"""LIF neuron and surrogates: known values and equality with spikingjelly 2.0's LIFNode."""

from __future__ import annotations

import zlib

import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from tmkt.snn import LIF, FiringRateMonitor, LIFConfig, build_surrogate, lif_multistep
from tmkt.snn.surrogate import ATan, Sigmoid, Triangle

# Our surrogate -> spikingjelly's with the same derivative. The triangle max(0, a - a^2|x|) is
# spikingjelly's PiecewiseQuadratic (its g'(x) is exactly that); ATan and Sigmoid share formulas.
SJ_SURROGATE = {
    ("triangle", 2.0): lambda: surrogate.PiecewiseQuadratic(alpha=2.0),
    ("triangle", 1.0): lambda: surrogate.PiecewiseQuadratic(alpha=1.0),
    ("atan", 2.0): lambda: surrogate.ATan(alpha=2.0),
    ("sigmoid", 4.0): lambda: surrogate.Sigmoid(alpha=4.0),
}
SHAPES = [(6, 3, 7), (4, 2, 3, 5, 5), (1, 4, 9), (10, 2, 16)]


def _sj_node(cfg: LIFConfig) -> neuron.LIFNode:
    sg = SJ_SURROGATE[(cfg.surrogate, build_surrogate(cfg.surrogate, cfg.alpha).alpha)]()
    return neuron.LIFNode(
        tau=float(cfg.tau),
        decay_input=True,
        v_threshold=cfg.v_threshold,
        v_reset=0.0 if cfg.reset == "hard" else None,
        detach_reset=cfg.detach_reset,
        surrogate_function=sg,
        step_mode="m",
        store_v_seq=True,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("sg,alpha", [("triangle", None), ("atan", None), ("sigmoid", None),
                                      ("triangle", 1.0)])
def test_matches_spikingjelly(shape, reset, detach, sg, alpha):
    cfg = LIFConfig(reset=reset, detach_reset=detach, surrogate=sg, alpha=alpha)
    seed = zlib.crc32(repr((shape, reset, detach, sg, alpha)).encode())
    gen = torch.Generator().manual_seed(seed)
    node = _sj_node(cfg)
    for _ in range(2):  # two sequences: ours starts from rest, spikingjelly after reset_net
        x = torch.randn(shape, generator=gen) * 0.8 + 0.5
        w_s = torch.randn(shape, generator=gen)
        w_v = torch.randn(shape, generator=gen)
        x1 = x.clone().requires_grad_()
        x2 = x.clone().requires_grad_()
        s1, v1 = lif_multistep(x1, cfg, return_v=True)
        s2 = node(x2)
        v2 = node.v_seq
        ((s1 * w_s).sum() + (v1 * w_v).sum()).backward()
        ((s2 * w_s).sum() + (v2 * w_v).sum()).backward()
        assert 0.05 < s1.mean().item() < 0.95  # the comparison exercises both branches
        torch.testing.assert_close(s1, s2, rtol=0, atol=0)
        torch.testing.assert_close(v1, v2, rtol=0, atol=1e-5)
        torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=1e-5)
        functional.reset_net(node)


def test_spike_only_gradient_matches_spikingjelly():
    x = torch.randn(8, 5, 6, generator=torch.Generator().manual_seed(1)) + 0.3
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    lif_multistep(x1)[0].sum().backward()
    _sj_node(LIFConfig())(x2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=1e-5)


def test_known_sequence_hard_and_soft():
    x = torch.tensor([1.6, 0.0, 0.6, 0.6, 0.6]).view(5, 1)
    s, v = lif_multistep(x, LIFConfig(reset="hard"), return_v=True)
    # h: 0.8 (spike, v=0), 0, 0.3, 0.45, 0.525 (spike, v=0)
    assert s.flatten().tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    torch.testing.assert_close(v.flatten(), torch.tensor([0.0, 0.0, 0.3, 0.45, 0.0]))
    s, v = lif_multistep(x, LIFConfig(reset="soft"), return_v=True)
    # h: 0.8 (spike, v=0.3), 0.15, 0.375, 0.4875, 0.54375 (spike, v=0.04375)
    assert s.flatten().tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    torch.testing.assert_close(v.flatten(), torch.tensor([0.3, 0.15, 0.375, 0.4875, 0.04375]))


def test_surrogate_derivatives_known_values():
    x = torch.tensor([0.0, 0.25, 0.5, -0.3, 1.0])
    torch.testing.assert_close(Triangle().grad(x), torch.tensor([2.0, 1.0, 0.0, 0.8, 0.0]))
    torch.testing.assert_close(ATan(2.0).grad(torch.tensor([0.0])), torch.tensor([1.0]))
    torch.testing.assert_close(Sigmoid(4.0).grad(torch.tensor([0.0])), torch.tensor([1.0]))
    # the single-step spike function: H forward, g' backward
    y = x.clone().requires_grad_()
    out = Triangle()(y)
    assert out.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    out.sum().backward()
    torch.testing.assert_close(y.grad, torch.tensor([2.0, 1.0, 0.0, 0.8, 0.0]))


@pytest.mark.parametrize("reset,detach", [("hard", True), ("soft", False), ("hard", False)])
def test_single_step_mode_equals_multi_step(reset, detach):
    x = torch.randn(7, 3, 4, generator=torch.Generator().manual_seed(3)) + 0.4
    xm, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    m = LIF(reset=reset, detach_reset=detach)
    s_m = m(xm)
    single = LIF(reset=reset, detach_reset=detach, step_mode="s")
    for _ in range(2):  # the second pass after reset() must repeat the first
        single.reset()
        s_s = torch.stack([single(xt) for xt in xs])
        torch.testing.assert_close(s_s, s_m)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    (s_m * w).sum().backward()
    (s_s * w).sum().backward()
    torch.testing.assert_close(xs.grad, xm.grad, atol=1e-5, rtol=0)


def test_no_state_leak_between_sequences():
    lif = LIF()
    a = torch.full((4, 2, 3), 0.6)
    first = lif(a)
    lif(torch.full((4, 5, 3), 3.0))  # another batch (and size) in between
    torch.testing.assert_close(lif(a), first)
    assert first[:, 0, 0].tolist() == [0.0, 0.0, 1.0, 0.0]  # h: .3, .45, .525 (spike), .3


def test_bad_options_and_input():
    with pytest.raises(ValueError, match="reset"):
        LIFConfig(reset="zero")
    with pytest.raises(ValueError, match="unknown surrogate"):
        LIFConfig(surrogate="relu")
    with pytest.raises(ValueError, match="alpha"):
        LIFConfig(alpha=-1.0)
    with pytest.raises(ValueError, match="tau"):
        LIFConfig(tau=0.5)
    with pytest.raises(ValueError, match="unknown neuron option"):
        LIF(tau_m=2.0)
    with pytest.raises(ValueError, match="step_mode"):
        LIF(step_mode="x")
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        lif_multistep(torch.zeros(5))
    with pytest.raises(ValueError, match="floating"):
        lif_multistep(torch.zeros(3, 2, dtype=torch.long))


def test_firing_rate_monitor_counts_spikes():
    net = torch.nn.Sequential(LIF(), LIF())
    x = torch.tensor([1.6, 0.0, 0.6, 0.6, 0.6]).view(5, 1, 1).repeat(1, 2, 2)
    net(x)  # outside the monitor: nothing recorded, no monitor attached
    assert all(m.monitor is None for m in net.modules() if isinstance(m, LIF))
    with FiringRateMonitor(net) as mon:
        net(x)
        net(x)
    assert all(m.monitor is None for m in net.modules() if isinstance(m, LIF))
    rates = mon.rates()
    assert list(rates) == ["0", "1"]
    assert rates["0"] == pytest.approx(2 / 5)  # spikes [1,0,0,0,1]
    # layer 1 sees [1,0,0,0,1]: h = .5 (spike), 0, 0, 0, .5 (spike)
    assert rates["1"] == pytest.approx(2 / 5)
    assert mon.mean_rate() == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="no LIF"):
        FiringRateMonitor(torch.nn.Linear(2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("reset,detach", [("hard", True), ("hard", False), ("soft", True),
                                          ("soft", False)])
@pytest.mark.parametrize("sg", ["triangle", "atan", "sigmoid"])
def test_cuda_kernels_match_torch_loop(reset, detach, sg):
    """On CUDA (Triton kernels when available) spikes, membranes and gradients equal the torch
    loop and spikingjelly."""
    from tmkt.snn import lif_triton

    cfg = LIFConfig(reset=reset, detach_reset=detach, surrogate=sg)
    gen = torch.Generator().manual_seed(11)
    x = (torch.randn(7, 5, 33, 17, generator=gen) * 0.8 + 0.5).cuda()
    w = torch.randn(x.shape, generator=gen).cuda()
    outs = []
    for enabled in (True, False):
        lif_triton.ENABLED = enabled
        try:
            xi = x.clone().requires_grad_()
            s, v = lif_multistep(xi, cfg, return_v=True)
            ((s * w).sum() + (v * w.flip(0)).sum()).backward()
            outs.append((s, v, xi.grad))
        finally:
            lif_triton.ENABLED = True
    node = _sj_node(cfg).cuda()
    xs = x.clone().requires_grad_()
    s2 = node(xs)
    ((s2 * w).sum() + (node.v_seq * w.flip(0)).sum()).backward()
    outs.append((s2, node.v_seq, xs.grad))
    for other in outs[1:]:
        torch.testing.assert_close(outs[0][0], other[0], rtol=0, atol=0)
        torch.testing.assert_close(outs[0][1], other[1], rtol=0, atol=1e-5)
        torch.testing.assert_close(outs[0][2], other[2], rtol=0, atol=1e-5)
