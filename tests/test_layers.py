"""Multi-step layer wrappers: folding equals a per-step loop; conv-BN-LIF equals spikingjelly."""

from __future__ import annotations

import copy

import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from tmkt.snn import LIF, ConvBNLIF, SeqBatchNorm2d, SeqFlatten, SeqToANN
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
def test_fused_bn_lif_equals_bn_then_lif(reset, detach, train, device):
    """The fused BN+LIF node (one saved tensor) equals SeqBatchNorm2d followed by LIF: outputs,
    membrane, running statistics, and gradients of input, BN weight and BN bias."""
    torch.manual_seed(0)
    bn_a = SeqBatchNorm2d(4).to(device)
    with torch.no_grad():
        bn_a.weight.uniform_(0.5, 1.5)
        bn_a.bias.uniform_(-0.2, 0.4)
        bn_a.running_mean.uniform_(-0.5, 0.5)
        bn_a.running_var.uniform_(0.5, 2.0)
    bn_b = copy.deepcopy(bn_a)
    lif = LIF(reset=reset, detach_reset=detach)
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
