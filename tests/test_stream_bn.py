"""Per-stream BN statistics in one interleaved batch equal two separate passes (float64)."""

from __future__ import annotations

import pytest
import torch

from tmkt.models import build_model
from tmkt.snn import SeqBatchNorm2d
from tmkt.snn.stream_bn import deinterleave, interleave, stream_batch_norm

T, B, HW = 3, 4, 8


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(T, B, 2, HW, HW, generator=g, dtype=torch.float64) * 2.0
    b = (torch.rand(T, B, 2, HW, HW, generator=g) < 0.3).double() * 3.0  # other statistics
    return a, b


def _model(name: str, seed: int = 1, **kw):
    torch.manual_seed(seed)
    return build_model(name, 5, in_shape=(2, HW, HW), width=0.25, **kw).double().train()


def _run(model, a, b, concat: bool):
    """Both streams' outputs, the summed loss's parameter gradients, and the BN buffers."""
    model.zero_grad(set_to_none=True)
    if concat:
        with stream_batch_norm(2):
            out = model(interleave(a, b))
        oa = [deinterleave(t, 2, 0) for t in out]
        ob = [deinterleave(t, 2, 1) for t in out]
    else:
        oa, ob = list(model(a)), list(model(b))
    w = torch.arange(1, oa[0].shape[-1] + 1, dtype=oa[0].dtype, device=oa[0].device)
    loss = (oa[0] * w).sum() + (ob[1] * w).square().sum() + oa[2].pow(3).mean() + ob[2].sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    bufs = {n: t.clone() for n, t in model.named_buffers()}
    return [o.detach() for o in oa + ob], grads, bufs


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("cnn_small", {}),  # fused BN+LIF, keeps the membrane
        ("cnn_small", {"bn_lif_saves": "input"}),  # fused, recomputes in backward
        ("cnn_small", {"bn_mode": "per_step"}),  # unfused SeqBatchNorm2d, per time step
        ("resnet18", {}),  # fused blocks plus BN on residual paths
    ],
)
def test_concat_equals_separate(name: str, kw: dict) -> None:
    a, b = _inputs()
    sep, cat = _model(name, **kw), _model(name, **kw)
    o1, g1, b1 = _run(sep, a, b, concat=False)
    o2, g2, b2 = _run(cat, a, b, concat=True)
    for x, y in zip(o1, o2, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-10)
    assert g1.keys() == g2.keys() and len(g1) > 0
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-9, atol=1e-10, msg=n)
    assert b1.keys() == b2.keys()
    for n in b1:  # running stats: stream 0's update, then stream 1's; batches counted twice
        torch.testing.assert_close(b2[n], b1[n], rtol=1e-12, atol=1e-12, msg=n)
    nbt = [t for n, t in b2.items() if n.endswith("num_batches_tracked")]
    assert nbt and all(int(t) == (2 * T if kw.get("bn_mode") == "per_step" else 2) for t in nbt)


def test_statistics_really_are_per_stream() -> None:
    """Pooled statistics (one plain BN over the interleaved batch) differ: the test above could
    not pass by accident."""
    a, b = _inputs()
    m1, m2 = _model("cnn_small"), _model("cnn_small")
    sep = _run(m1, a, b, concat=False)[0]
    with torch.no_grad():
        out = m2(interleave(a, b))  # no stream_batch_norm: statistics over both streams
    assert not torch.allclose(deinterleave(out[0], 2, 0), sep[0])


def test_momentum_none_and_eval() -> None:
    a, b = _inputs(3)
    bn1, bn2 = SeqBatchNorm2d(2, momentum=None).double(), SeqBatchNorm2d(2, momentum=None).double()
    for _ in range(2):
        ya, yb = bn1(a), bn1(b)
        with stream_batch_norm(2):
            y = bn2(interleave(a, b))
    torch.testing.assert_close(deinterleave(y, 2, 0), ya, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(deinterleave(y, 2, 1), yb, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn2.running_mean, bn1.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn2.running_var, bn1.running_var, rtol=1e-12, atol=1e-12)
    assert int(bn2.num_batches_tracked) == int(bn1.num_batches_tracked) == 4
    bn1.eval(), bn2.eval()
    with stream_batch_norm(2):
        ye = bn2(interleave(a, b))
    torch.testing.assert_close(deinterleave(ye, 2, 0), bn1(a), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(deinterleave(ye, 2, 1), bn1(b), rtol=1e-12, atol=1e-12)


def test_interleave_roundtrip_and_odd_batch() -> None:
    a, b = _inputs()
    x = interleave(a, b)
    assert x.shape == (T, 2 * B, 2, HW, HW)
    assert torch.equal(x[:, 2 * 3 + 1], b[:, 3]) and torch.equal(x[:, 2 * 2], a[:, 2])
    assert torch.equal(deinterleave(x, 2, 0), a) and torch.equal(deinterleave(x, 2, 1), b)
    with stream_batch_norm(2), pytest.raises(ValueError, match="5 samples cannot hold 2"):
        SeqBatchNorm2d(2).double()(torch.zeros(1, 5, 2, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive integer"):
        with stream_batch_norm(0):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["cnn_small", "resnet18"])
def test_concat_equals_separate_on_cuda(name: str) -> None:
    """cuDNN's BN over the grouped view (float32, TF32 off): outputs, gradients, running stats."""
    a, b = (x.float().cuda() for x in _inputs(5))
    torch.backends.cudnn.allow_tf32, old = False, torch.backends.cudnn.allow_tf32
    try:
        o1, g1, b1 = _run(_model(name).float().cuda(), a, b, concat=False)
        o2, g2, b2 = _run(_model(name).float().cuda(), a, b, concat=True)
    finally:
        torch.backends.cudnn.allow_tf32 = old
    for x, y in zip(o1, o2, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4)
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-3, atol=1e-4, msg=n)
    for n in b1:
        torch.testing.assert_close(b2[n], b1[n], rtol=1e-5, atol=1e-6, msg=n)


def test_compiled_model_follows_the_stream_context() -> None:
    """torch.compile (dynamo tracing, eager backend) of a real backbone trains as eager does,
    and does not bake the context in: the same compiled model keeps per-stream statistics inside
    the block and plain BN outside it."""
    a, b = _inputs(7)  # float64: no spike can flip on rounding between the two runs
    ref, model = _model("cnn_small"), _model("cnn_small")
    compiled = torch.compile(model, backend="eager")
    x = interleave(a, b)
    for grouped in (True, False, True):
        ref.zero_grad(), model.zero_grad()
        with stream_batch_norm(2 if grouped else 1):
            want, got = ref(x), compiled(x)
        for w, g in zip(want, got, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
        (want[1].square().sum() + want[2].sum()).backward()
        (got[1].square().sum() + got[2].sum()).backward()
        for (n, r), m in zip(ref.named_parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(m.grad, r.grad, rtol=1e-9, atol=1e-10, msg=n)
    for (n, r), (_, m) in zip(ref.named_buffers(), model.named_buffers(), strict=True):
        torch.testing.assert_close(m, r, rtol=1e-10, atol=1e-12, msg=n)
