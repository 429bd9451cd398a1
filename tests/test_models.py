"""Backbones: output contract, parameter counts, input checks, feature semantics, monitor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tmkt.models import MODELS, NetOutput, build_model
from tmkt.snn import LIF, FiringRateMonitor, lif_multistep

# name -> (in_shape used in the test, feature_dim F, cka_dim D)
CASES = {
    "vgg_snn": ((2, 48, 48), 512 * 3 * 3, 512 * 6 * 6),
    "resnet18": ((2, 32, 32), 512, 512 * 4 * 4),
    "resnet19": ((2, 32, 32), 512, 512 * 8 * 8),
    "cnn_small": ((2, 34, 34), 128 * 4 * 4, 128 * 8 * 8),
}


def _conv_weights(m: nn.Module) -> int:
    return sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))


def _bn_params(m: nn.Module) -> int:
    return sum(p.numel() for b in m.modules() if isinstance(b, nn.BatchNorm2d)
               for p in b.parameters())


def test_registry_names():
    assert MODELS.names() == ["cnn_small", "resnet18", "resnet19", "vgg_snn"]
    with pytest.raises(ValueError, match="valid: cnn_small, resnet18"):
        build_model("vgg16", 10)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_contract(name):
    shape, F, D = CASES[name]
    torch.manual_seed(0)
    model = build_model(name, 7, shape, width=0.25 if name != "cnn_small" else 1.0)
    full_F = F if name == "cnn_small" else F // 4
    full_D = D if name == "cnn_small" else D // 4
    assert model.num_classes == 7 and model.in_shape == shape
    assert model.feature_dim == full_F and model.cka_dim == full_D
    x = (torch.rand(3, 2, *shape) < 0.3).float()
    out = model(x)
    assert isinstance(out, NetOutput)
    assert out.logits_src.shape == (3, 2, 7) and out.logits_evt.shape == (3, 2, 7)
    assert out.feat_cka.shape == (3, 2, full_D) and out.feat_pool.shape == (3, 2, full_F)
    # the two heads are distinct layers on the same feature
    torch.testing.assert_close(out.logits_evt, model.head_evt(out.feat_pool))
    assert not torch.allclose(out.logits_src, out.logits_evt)
    # every output reaches the first conv in backward
    sum(o.float().pow(2).mean() for o in out).backward()
    first = next(c for c in model.modules() if isinstance(c, nn.Conv2d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_vgg_snn_parameter_counts():
    model = build_model("vgg_snn", 101, (2, 48, 48))
    assert _conv_weights(model) == 9_217_152  # 3x3 convs 2-64-128-256-256-512-512-512-512
    assert _bn_params(model) == 5_504
    assert all(c.bias is None for c in model.modules() if isinstance(c, nn.Conv2d))
    assert model.feature_dim == 4608  # 512 x 3 x 3 after four 2x2 pools (He's classifier input)
    heads = 2 * (4608 * 101 + 101)
    assert sum(p.numel() for p in model.parameters()) == 9_217_152 + 5_504 + heads


def test_width_multiplier():
    half = build_model("vgg_snn", 10, (2, 48, 48), width=0.5)
    chans = [2, 32, 64, 128, 128, 256, 256, 256, 256]
    assert _conv_weights(half) == sum(9 * a * b for a, b in zip(chans, chans[1:], strict=False))
    assert half.feature_dim == 256 * 9
    with pytest.raises(ValueError, match="width"):
        build_model("vgg_snn", 10, width=0)


def test_resnet_parameter_counts():
    r18 = build_model("resnet18", 10, (2, 32, 32))
    blocks = 0
    c = 64
    for out, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                        (512, 1)]:
        blocks += 9 * c * out + 9 * out * out + (c * out if (stride != 1 or c != out) else 0)
        c = out
    assert _conv_weights(r18) == 9 * 2 * 64 + blocks
    # = torchvision's resnet18 conv weights (11,166,912) - its 7x7 RGB stem + a 3x3 2-ch stem
    assert _conv_weights(r18) == 11_158_656
    r19 = build_model("resnet19", 10, (2, 32, 32))
    blocks = 0
    c = 128
    for out, n in [(128, 3), (256, 3), (512, 2)]:
        for _ in range(n):
            blocks += 9 * c * out + 9 * out * out + (c * out if c != out else 0)
            c = out
    assert _conv_weights(r19) == 9 * 2 * 128 + blocks == 12_552_448
    assert sum(isinstance(m, LIF) for m in r19.modules()) == 1 + 2 * 8


@pytest.mark.parametrize(
    "x_shape,bad",
    [((2, 2, 48, 48), "rank"), ((3, 2, 3, 48, 48), "channels"), ((3, 2, 2, 34, 34), "size")],
)
def test_bad_input_names_expected_and_received_shape(x_shape, bad):
    model = build_model("vgg_snn", 10, (2, 48, 48), width=0.125)
    with pytest.raises(ValueError) as err:
        model(torch.zeros(x_shape))
    msg = str(err.value)
    assert "[T, B, 2, 48, 48]" in msg and str(list(x_shape)) in msg


def test_bad_options():
    with pytest.raises(ValueError, match="in_shape"):
        build_model("cnn_small", 10, (34, 34))
    with pytest.raises(ValueError, match="num_classes"):
        build_model("cnn_small", 0, (2, 34, 34))
    with pytest.raises(ValueError, match="unknown neuron option"):
        build_model("cnn_small", 10, (2, 34, 34), threshold=1.0)
    with pytest.raises(ValueError, match="bn_mode"):
        build_model("cnn_small", 10, (2, 34, 34), bn_mode="none")


def test_neuron_options_reach_every_lif():
    model = build_model("cnn_small", 10, (2, 34, 34), tau=3.0, reset="soft", surrogate="atan")
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    assert len(lifs) == 3
    assert all(m.cfg.tau == 3.0 and m.cfg.reset == "soft" and m.sg.name == "atan" for m in lifs)


def test_feat_cka_is_last_conv_block_membrane():
    torch.manual_seed(0)
    model = build_model("cnn_small", 10, (2, 34, 34))
    captured = {}
    last = model.layers[model.last_conv]
    last.conv.register_forward_hook(lambda m, i, o: captured.setdefault("conv", o))
    x = (torch.rand(4, 2, 2, 34, 34) < 0.3).float()
    out = model(x)
    _, v = lif_multistep(last.bn(captured["conv"]), return_v=True)  # unfused BN then LIF
    torch.testing.assert_close(out.feat_cka, v.flatten(2))


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_state_leak_and_bn_modes_agree_in_eval(name):
    """A second batch does not change the output for the first; in eval mode the fused
    (fold) BN+LIF path and the plain per-step BN path give the same outputs."""
    shape = CASES[name][0]
    width = 1.0 if name == "cnn_small" else 0.125
    torch.manual_seed(0)
    fold = build_model(name, 10, shape, width=width)
    with torch.no_grad():
        for m in fold.modules():  # non-trivial running statistics, and activity in every layer
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(0.2, 0.7)
    fold.eval()
    per_step = build_model(name, 10, shape, width=width, bn_mode="per_step").eval()
    per_step.load_state_dict(fold.state_dict())
    a = (torch.rand(4, 2, *shape) < 0.3).float()
    b = (torch.rand(4, 3, *shape) < 0.6).float()
    with torch.no_grad():
        first = fold(a)
        fold(b)
        again = fold(a)
        other = per_step(a)
    assert first.feat_pool.abs().sum() > 0
    for u, v, w in zip(first, again, other, strict=True):
        torch.testing.assert_close(u, v)
        torch.testing.assert_close(u, w)


def test_firing_rate_monitor_on_model_matches_hooks():
    torch.manual_seed(0)
    model = build_model("cnn_small", 10, (2, 34, 34))
    seen: dict[str, list[torch.Tensor]] = {}
    for i in (0, 2):  # conv-BN-LIF blocks called through forward(): their output is the spikes
        model.layers[i].register_forward_hook(
            lambda mod, inp, o, n=f"layers.{i}.lif": seen.setdefault(n, []).append(o)
        )
    x = (torch.rand(4, 2, 2, 34, 34) < 0.3).float()
    with FiringRateMonitor(model) as mon:
        model(x)
        model(x[:, :1])
    rates = mon.rates()
    assert list(rates) == ["layers.0.lif", "layers.2.lif", "layers.4.lif"]
    for n in ("layers.0.lif", "layers.2.lif"):
        s = torch.cat([o.flatten() for o in seen[n]])
        assert rates[n] == pytest.approx(s.mean().item(), rel=1e-6)
    assert all(0.0 < r < 1.0 for r in rates.values())


def test_integer_frames_are_widened_on_the_device():
    """uint8 event counts (the frame cache's storage) give exactly the outputs of the same
    counts as float32; complex input is refused."""
    torch.manual_seed(0)
    model = build_model("cnn_small", 10, (2, 34, 34))
    counts = torch.randint(0, 4, (3, 2, 2, 34, 34), dtype=torch.uint8)
    for a, b in zip(model(counts), model(counts.float()), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="real frames"):
        model(counts.to(torch.complex64))
