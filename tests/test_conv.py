"""CPU convolution algorithm (tmkt.snn.conv): NNPACK's Winograd forward and input gradient
against a float64 reference, the rules that choose it, and its place in SeqToANN and configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tmkt.snn.conv import (
    AUTO_MIN_CHANNEL_PRODUCT,
    CONV_ALGOS,
    nnpack_available,
    tile_fill,
    winograd_applies,
    winograd_conv2d,
)
from tmkt.snn.layers import SeqToANN
from tmkt.snn.neuron import LIFConfig

needs_nnpack = pytest.mark.skipif(not nnpack_available(), reason="torch built without NNPACK")


def _reference(x, conv, g):
    """Output and gradients (x, weight, bias) of the same convolution in float64."""
    x64 = x.detach().double().requires_grad_()
    w64 = conv.weight.detach().double().requires_grad_()
    b64 = None if conv.bias is None else conv.bias.detach().double().requires_grad_()
    y = F.conv2d(x64, w64, b64, padding=conv.padding)
    grads = torch.autograd.grad(y, [t for t in (x64, w64, b64) if t is not None], g.double())
    return y, grads


@needs_nnpack
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(3, 16, 24, 9, 11), (2, 64, 128, 12, 12)])
def test_winograd_matches_float64_reference(padding, bias, shape):
    """Values and all gradients within 1e-4 of the largest reference magnitude (Winograd's
    rounding is ~1e-5 relative; oneDNN's ~1e-6); repeated calls are bit-identical."""
    torch.manual_seed(padding + 3 * bias)
    n, cin, cout, h, w = shape
    conv = nn.Conv2d(cin, cout, 3, padding=padding, bias=bias)
    x = (torch.rand(n, cin, h, w) < 0.3).float().requires_grad_()
    y = winograd_conv2d(x, conv)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, conv.weight] + ([conv.bias] if bias else []), g)
    ref_y, ref_grads = _reference(x, conv, g)
    assert y.shape == ref_y.shape and y.dtype == torch.float32
    for a, b in zip((y, *got), (ref_y, *ref_grads), strict=True):
        scale = b.abs().max().item()
        assert (a.double() - b).abs().max().item() <= 1e-4 * scale
    assert torch.equal(y, winograd_conv2d(x, conv))


@needs_nnpack
def test_input_gradient_skipped_when_not_needed():
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    x = torch.rand(2, 16, 8, 8)  # no requires_grad: only the weight gradient is computed
    y = winograd_conv2d(x, conv)
    y.sum().backward()
    ref = torch.autograd.grad(F.conv2d(x, conv.weight, padding=1).sum(), conv.weight)[0]
    torch.testing.assert_close(conv.weight.grad, ref, rtol=1e-4, atol=1e-4)


@needs_nnpack
def test_rules_that_choose_winograd():
    x = torch.zeros(2, 128, 12, 12)
    wide = nn.Conv2d(128, 128, 3, padding=1, bias=False)
    assert 128 * 128 >= AUTO_MIN_CHANNEL_PRODUCT
    assert winograd_applies(wide, x, "auto") and winograd_applies(wide, x, "winograd")
    assert not winograd_applies(wide, x, "default")
    # 8x8 outputs fill 64 of the 144 outputs of their 6x6 tiles: measured slower, auto declines
    assert tile_fill(8, 8) == pytest.approx(64 / 144) and tile_fill(12, 12) == 1.0
    small = torch.zeros(2, 128, 8, 8)
    assert not winograd_applies(wide, small, "auto") and winograd_applies(wide, small, "winograd")
    assert not winograd_applies(nn.Conv2d(64, 128, 3, padding=1), torch.zeros(1, 64, 12, 12),
                                "auto")  # 64 x 128 < 128 x 128
    narrow = nn.Conv2d(2, 64, 3, padding=1)  # few channels: slower there, auto keeps torch's
    x2 = torch.zeros(2, 2, 8, 8)
    assert not winograd_applies(narrow, x2, "auto") and winograd_applies(narrow, x2, "winograd")
    for other in (nn.Conv2d(128, 128, 3, stride=2, padding=1), nn.Conv2d(128, 128, 1),
                  nn.Conv2d(128, 128, 3, padding=1, dilation=2),
                  nn.Conv2d(128, 128, 3, padding=1, groups=2),
                  nn.Conv2d(128, 128, 3, padding=1, padding_mode="reflect")):
        assert not winograd_applies(other, x, "winograd")
    assert not winograd_applies(wide, x.double(), "auto")
    assert not winograd_applies(wide, x.to("meta"), "auto")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not winograd_applies(wide, x, "auto")
    with pytest.raises(ValueError, match="conv_algo"):
        winograd_applies(wide, x, "fast")


@needs_nnpack
def test_seq_to_ann_runs_wide_convs_through_winograd():
    torch.manual_seed(0)
    conv = nn.Conv2d(128, 128, 3, padding=1, bias=False)
    x = (torch.rand(3, 2, 128, 12, 12) < 0.2).float()
    auto = SeqToANN(conv, conv_algo="auto")
    plain = SeqToANN(conv)  # the library default for a bare SeqToANN: torch's algorithm
    y = auto(x)
    assert torch.equal(y, winograd_conv2d(x.flatten(0, 1), conv).unflatten(0, (3, 2)))
    torch.testing.assert_close(y, plain(x), rtol=1e-4, atol=1e-4)
    assert "conv_algo=auto" in repr(auto) and "conv_algo" not in repr(plain)


def test_conv_algo_is_validated_everywhere():
    from tmkt.train.config import ConfigError, load_config

    assert LIFConfig().conv_algo == "auto" and "auto" in CONV_ALGOS
    with pytest.raises(ValueError, match="conv_algo"):
        LIFConfig(conv_algo="fastest")
    with pytest.raises(ValueError, match="conv_algo"):
        SeqToANN(nn.Conv2d(1, 1, 3), conv_algo="fastest")
    with pytest.raises(ConfigError, match="model.conv_algo"):
        load_config(None, ["model.conv_algo=fastest"])


def test_backbones_pass_the_algorithm_to_every_convolution():
    from tmkt.models import build_model

    for name, shape in (("vgg_snn", (2, 48, 48)), ("resnet18", (2, 32, 32))):
        model = build_model(name, 10, shape, width=0.25, conv_algo="default")
        algos = {m.conv_algo for m in model.modules() if isinstance(m, SeqToANN)}
        assert algos == {"default"}
        model = build_model(name, 10, shape, width=0.25)
        algos = {m.conv_algo for m in model.modules() if isinstance(m, SeqToANN)}
        assert algos == {"auto"}


@needs_nnpack
def test_torch_compile_traces_torchs_own_convolution():
    """NNPACK has no fake-tensor kernel, so under torch.compile the layer takes torch's path
    (dynamo tracing with the eager backend: no C++ toolchain needed)."""
    torch.manual_seed(0)
    layer = SeqToANN(nn.Conv2d(128, 128, 3, padding=1, bias=False), conv_algo="auto")
    x = torch.rand(2, 2, 128, 12, 12)
    compiled = torch.compile(layer, backend="eager")
    torch.testing.assert_close(compiled(x), SeqToANN(layer[0])(x), rtol=0, atol=0)
