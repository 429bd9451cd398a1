"""Multi-step layer wrappers: folding equals a per-step loop; conv-BN-LIF equals spikingjelly."""

from __future__ import annotations

import copy

import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from tmkt.snn import LIF, ConvBNLIF, LIFConfig, SeqBatchNorm2d, SeqFlatten, SeqToANN
from tmkt.snn.layers import bn_lif


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_seq_to_ann_equals_per_step_loop():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = _x(5, 2, 3, 6, 6)
    y = SeqToANN(conv, nn.AvgPool2d(2))(x)
    ref = torch.stack([nn.functional.avg_pool2d(conv(xt), 2) for xt in x])
    assert y.shape == (5, 2, 4, 3, 3)
    torch.testing.assert_close(y, ref)


def test_seq_flatten_shape_and_values():
    x = _x(3, 2, 4, 5, 5)
    y = SeqFlatten()(x)
    assert y.shape == (3, 2, 100)
    torch.testing.assert_close(y[1, 0], x[1, 0].reshape(-1))


def test_batchnorm_fold_uses_statistics_over_t_and_b():
    bn = SeqBatchNorm2d(3)
    ref = nn.BatchNorm2d(3)
    x = _x(4, 2, 3, 5, 5) * 2 + 1
    torch.testing.assert_close(bn(x), ref(x.flatten(0, 1)).unflatten(0, (4, 2)))
    torch.testing.assert_close(bn.running_mean, ref.running_mean)


def test_batchnorm_per_step_uses_statistics_per_step():
    bn = SeqBatchNorm2d(3, mode="per_step")
    ref = nn.BatchNorm2d(3)
    x = _x(4, 2, 3, 5, 5) * 2 + torch.arange(4.0).view(4, 1, 1, 1, 1)  # a drift over time
    y = bn(x)
    torch.testing.assert_close(y, torch.stack([ref(xt) for xt in x]))
    torch.testing.assert_close(bn.running_mean, ref.running_mean)  # updated T times
    # with a drift over time, per-step normalisation differs from folding
    assert not torch.allclose(y, SeqBatchNorm2d(3)(x), atol=1e-3)
    # in eval mode both use the running statistics: identical
    fold = SeqBatchNorm2d(3)
    fold.load_state_dict(bn.state_dict())
    bn.eval()
    fold.eval()
    torch.testing.assert_close(bn(x), fold(x))


def test_bad_inputs_and_options():
    with pytest.raises(ValueError, match="bn_mode"):
        SeqBatchNorm2d(3, mode="time")
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        SeqBatchNorm2d(3)(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        SeqToANN(nn.Identity())(torch.zeros(4, 4))


def test_conv_bn_lif_matches_spikingjelly():
    """Our block and spikingjelly's SeqToANNContainer(conv, BN) + LIFNode (PiecewiseQuadratic(2)
    = our triangle surrogate), same weights: spikes, membrane and all gradients agree."""
    torch.manual_seed(0)
    ours = ConvBNLIF(2, 6)
    sj_conv = layer.SeqToANNContainer(nn.Conv2d(2, 6, 3, 1, 1, bias=False), nn.BatchNorm2d(6))
    sj_conv[0].weight.data.copy_(ours.conv[0].weight.data)
    sj_lif = neuron.LIFNode(
        tau=2.0, v_threshold=0.5, v_reset=0.0, detach_reset=True,
        surrogate_function=surrogate.PiecewiseQuadratic(alpha=2.0), step_mode="m",
        store_v_seq=True,
    )
    for seed in (1, 2):  # two batches: no state carried over on either side
        x = (torch.rand(5, 3, 2, 8, 8, generator=torch.Generator().manual_seed(seed)) < 0.3)
        x1 = x.float().requires_grad_()
        x2 = x.float().requires_grad_()
        s1, v1 = ours.forward_with_v(x1)
        s2 = sj_lif(sj_conv(x2))
        v2 = sj_lif.v_seq
        w = torch.randn(s1.shape, generator=torch.Generator().manual_seed(seed + 10))
        ((s1 * w).sum() + (v1 * w).sum()).backward()
        ((s2 * w).sum() + (v2 * w).sum()).backward()
        assert 0.05 < s1.mean().item() < 0.95
        torch.testing.assert_close(s1, s2, rtol=0, atol=0)
        torch.testing.assert_close(v1, v2, rtol=0, atol=1e-5)
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.conv[0].weight.grad, sj_conv[0].weight.grad,
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.bn.weight.grad, sj_conv[1].weight.grad,
                                   rtol=1e-4, atol=1e-5)
        functional.reset_net(sj_lif)
        for p in (*ours.parameters(), *sj_conv.parameters()):
            p.grad = None


def test_conv_bn_lif_per_step_bn_equals_step_loop():
    torch.manual_seed(0)
    blk = ConvBNLIF(2, 4, bn_mode="per_step")
    conv, bn = copy.deepcopy(blk.conv[0]), copy.deepcopy(blk.bn)
    x = (torch.rand(4, 3, 2, 6, 6, generator=torch.Generator().manual_seed(5)) < 0.4).float()
    pre = torch.stack([nn.BatchNorm2d.forward(bn, conv(xt)) for xt in x])
    from tmkt.snn import lif_multistep

    torch.testing.assert_close(blk(x), lif_multistep(pre)[0])


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("reset,detach", [("hard", True), ("soft", False), ("hard", False)])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("saves", ["membrane", "input"])
def test_fused_bn_lif_equals_bn_then_lif(reset, detach, train, device, saves):
    """The fused BN+LIF node (either saving mode) equals SeqBatchNorm2d followed by LIF: outputs,
    membrane, running statistics, and gradients of input, BN weight and BN bias."""
    torch.manual_seed(0)
    bn_a = SeqBatchNorm2d(4).to(device)
    with torch.no_grad():
        bn_a.weight.uniform_(0.5, 1.5)
        bn_a.bias.uniform_(-0.2, 0.4)
        bn_a.running_mean.uniform_(-0.5, 0.5)
        bn_a.running_var.uniform_(0.5, 2.0)
    bn_b = copy.deepcopy(bn_a)
    lif = LIF(reset=reset, detach_reset=detach, bn_lif_saves=saves)
    bn_a.train(train)
    bn_b.train(train)
    y = (_x(6, 3, 4, 5, 5, seed=7) * 1.5 + 0.3).to(device)
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
    s1, v1 = bn_lif(bn_a, lif, y1, want_v=True)  # fused
    s2, v2 = lif.forward_with_v(bn_b(y2))  # reference
    w = _x(*y.shape, seed=8).to(device)
    ((s1 * w).sum() + (v1 * w.flip(0)).sum()).backward()
    ((s2 * w).sum() + (v2 * w.flip(0)).sum()).backward()
    assert 0.05 < s1.mean().item() < 0.95
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    torch.testing.assert_close(y1.grad, y2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(bn_a.weight.grad, bn_b.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn_a.bias.grad, bn_b.bias.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn_a.running_mean, bn_b.running_mean)
    torch.testing.assert_close(bn_a.running_var, bn_b.running_var)
    assert int(bn_a.num_batches_tracked) == int(bn_b.num_batches_tracked) == int(train)


@pytest.mark.parametrize("saves", ["membrane", "input"])
def test_fused_bn_lif_second_backward_through_retained_graph(saves):
    """'membrane' turns its saved membrane into the gradient in place; a second backward through
    a retained graph recomputes it and gives the same gradients."""
    torch.manual_seed(0)
    bn = SeqBatchNorm2d(3)
    lif = LIF(bn_lif_saves=saves)
    y = (_x(5, 2, 3, 4, 4, seed=3) + 0.4).requires_grad_()
    s, v = bn_lif(bn, lif, y, want_v=True)
    loss = (s * _x(*y.shape, seed=4)).sum() + (v * _x(*y.shape, seed=5)).sum()
    (g1,) = torch.autograd.grad(loss, y, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, y)
    assert g1.abs().sum() > 0
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


def _conv_pair(conv_time: str, **kw):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, **kw)
    return SeqToANN(conv), SeqToANN(copy.deepcopy(conv), conv_time=conv_time)


@pytest.mark.parametrize("kw", [dict(padding=1, bias=False), dict(stride=2, padding=1),
                                dict(padding=0, dilation=2, bias=True)])
@pytest.mark.parametrize("T,B", [(6, 4), (5, 3), (3, 16)])
def test_conv_per_step_equals_folded(kw, T, B):
    """conv_time='step' (chunks of whole time steps, >= 16 frames each, last chunk shorter)
    gives the folded convolution's output and input gradient; weight/bias gradients are sums over
    chunks (equal up to rounding)."""
    fold, step = _conv_pair("step", **kw)
    x1 = _x(T, B, 3, 9, 9, seed=1).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    y1, y2 = fold(x1), step(x2)
    assert step._steps_per_chunk(x2) == (-(-16 // B) if -(-16 // B) < T else 0)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    g = _x(*y1.shape, seed=2)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=0)
    for p1, p2 in zip(fold.parameters(), step.parameters(), strict=True):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-4)


def test_conv_time_auto_picks_per_step_only_for_large_frames_on_cpu(monkeypatch):
    from tmkt import allocator
    from tmkt.snn.layers import STEP_MIN_PIXELS

    monkeypatch.setattr(allocator, "_applied", None)  # the C library's allocator

    assert STEP_MIN_PIXELS == 24 * 24
    auto = SeqToANN(nn.Conv2d(2, 4, 3, padding=1), conv_time="auto")
    assert auto._steps_per_chunk(torch.zeros(10, 16, 2, 24, 24)) == 1
    assert auto._steps_per_chunk(torch.zeros(10, 4, 2, 24, 24)) == 4  # >= 16 frames a chunk
    assert auto._steps_per_chunk(torch.zeros(10, 16, 2, 23, 24)) == 0  # 552 pixels: fold
    assert auto._steps_per_chunk(torch.zeros(1, 16, 2, 48, 48)) == 0  # one chunk = fold
    strided = SeqToANN(nn.Conv2d(2, 4, 3, stride=2, padding=1), conv_time="auto")
    assert strided._steps_per_chunk(torch.zeros(10, 16, 2, 48, 48)) == 1  # 24x24 output
    assert strided._steps_per_chunk(torch.zeros(10, 16, 2, 46, 46)) == 0  # 23x23 output
    monkeypatch.setattr(allocator, "_applied", "cache")  # caching allocator: always fold
    assert auto._steps_per_chunk(torch.zeros(10, 16, 2, 24, 24)) == 0
    assert SeqToANN(nn.Conv2d(2, 4, 3, padding=1), conv_time="step")._steps_per_chunk(
        torch.zeros(10, 16, 2, 24, 24)) == 1  # an explicit 'step' still steps
    # not a lone Conv2d, or 'fold': always folded
    assert SeqToANN(nn.Conv2d(2, 4, 3), nn.ReLU(), conv_time="step")._steps_per_chunk(
        torch.zeros(10, 16, 2, 48, 48)) == 0
    assert SeqToANN(nn.Conv2d(2, 4, 3))._steps_per_chunk(torch.zeros(10, 16, 2, 48, 48)) == 0
    # the block takes it from its neuron config; the default is 'auto'
    assert ConvBNLIF(2, 4).conv.conv_time == "auto"
    assert ConvBNLIF(2, 4, neuron=LIFConfig(conv_time="fold")).conv.conv_time == "fold"
    with pytest.raises(ValueError, match="conv_time"):
        SeqToANN(nn.Identity(), conv_time="chunk")
    with pytest.raises(ValueError, match="conv_time"):
        LIFConfig(conv_time="chunk")
    with pytest.raises(ValueError, match="bn_lif_saves"):
        LIFConfig(bn_lif_saves="output")
    assert LIFConfig().bn_lif_saves == "membrane"


def test_conv_bn_lif_modes_agree():
    """ConvBNLIF under every conv_time x bn_lif_saves setting: same spikes, membrane and input
    gradient; weight gradients equal up to rounding."""
    x = (torch.rand(6, 4, 2, 24, 24, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    w = _x(6, 4, 5, 24, 24, seed=4)
    outs = []
    for conv_time in ("fold", "step", "auto"):
        for saves in ("membrane", "input"):
            torch.manual_seed(0)
            blk = ConvBNLIF(2, 5, neuron=LIFConfig(conv_time=conv_time, bn_lif_saves=saves))
            xi = x.clone().requires_grad_()
            s, v = blk.forward_with_v(xi)
            ((s * w).sum() + (v * w).sum()).backward()
            outs.append((s, v, xi.grad, blk.conv[0].weight.grad, blk.bn.weight.grad))
    for o in outs[1:]:
        torch.testing.assert_close(o[0], outs[0][0], rtol=0, atol=0)
        torch.testing.assert_close(o[1], outs[0][1], rtol=0, atol=0)
        torch.testing.assert_close(o[2], outs[0][2], rtol=0, atol=0)
        torch.testing.assert_close(o[3], outs[0][3], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(o[4], outs[0][4], rtol=0, atol=0)


@pytest.mark.parametrize("hw", [(34, 34), (17, 17), (8, 9), (2, 3)])
def test_seq_avg_pool_2x2_is_bit_identical_to_avg_pool2d(hw):
    """Values and input gradients equal SeqToANN(nn.AvgPool2d(2)) bit for bit (random floats and
    spikes; odd sizes floor, their last row/column get zero gradient)."""
    from tmkt.snn.layers import SeqAvgPool2x2

    g = torch.Generator().manual_seed(5)
    for x0 in (torch.randn(3, 2, 4, *hw, generator=g),
               (torch.rand(3, 2, 4, *hw, generator=g) < 0.3).float()):
        x = x0.clone().requires_grad_()
        xr = x0.clone().requires_grad_()
        y, yr = SeqAvgPool2x2()(x), SeqToANN(nn.AvgPool2d(2))(xr)
        assert y.shape == yr.shape and torch.equal(y, yr)
        up = torch.randn(y.shape, generator=g)
        (gx,) = torch.autograd.grad(y, x, up)
        (gr,) = torch.autograd.grad(yr, xr, up)
        assert torch.equal(gx, gr)
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        SeqAvgPool2x2()(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="at least 2x2"):
        SeqAvgPool2x2()(torch.zeros(2, 1, 1, 1, 4))
