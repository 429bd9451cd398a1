"""Losses against direct numpy computations: TET, linear CKA, the domain loss, MAG, MRP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmkt.transfer.losses import DomainLoss, linear_cka, mag_loss, mrp_loss, tet_loss


def _np_ce(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def _np_tet(logits: np.ndarray, y: np.ndarray, lam: float, phi: float, w=None) -> float:
    T = logits.shape[0]
    w = np.ones(T) if w is None else w
    ce = sum(w[t] * _np_ce(logits[t], y) for t in range(T)) / T
    mse = sum(w[t] * ((logits[t] - phi) ** 2).mean() for t in range(T)) / T
    return (1 - lam) * ce + lam * mse


def _np_cka(f: np.ndarray, g: np.ndarray) -> float:
    """Gram-matrix form, centred with H = I - 11^T/n (a different route from the code's)."""
    n = f.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kc = h @ (f @ f.T) @ h
    lc = h @ (g @ g.T) @ h
    return float((kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc) + 1e-7))


def test_tet_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7, 4))
    y = rng.integers(0, 4, size=7)
    got = tet_loss(torch.tensor(logits), torch.tensor(y))
    assert got.item() == pytest.approx(_np_tet(logits, y, 1e-3, 0.5), rel=1e-10)
    got = tet_loss(torch.tensor(logits), torch.tensor(y), lam=0.3, phi=1.0)
    assert got.item() == pytest.approx(_np_tet(logits, y, 0.3, 1.0), rel=1e-10)


def test_tet_step_weights_enter_both_terms_divided_by_T() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 6, 3))
    y = rng.integers(0, 3, size=6)
    w = np.array([0.1, 0.5, 0.0, 2.0])
    got = tet_loss(torch.tensor(logits), torch.tensor(y), lam=0.2, step_weights=torch.tensor(w))
    assert got.item() == pytest.approx(_np_tet(logits, y, 0.2, 0.5, w), rel=1e-10)
    ones = tet_loss(torch.tensor(logits), torch.tensor(y), step_weights=torch.ones(4))
    assert ones.item() == pytest.approx(tet_loss(torch.tensor(logits), torch.tensor(y)).item())


def test_tet_bad_shapes() -> None:
    with pytest.raises(ValueError, match="T, B, K"):
        tet_loss(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="y must be"):
        tet_loss(torch.zeros(2, 3, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="step_weights"):
        tet_loss(torch.zeros(2, 3, 4), torch.zeros(3, dtype=torch.long), step_weights=torch.ones(3))


@pytest.mark.parametrize("B", [2, 3, 17])
def test_cka_matches_numpy_any_batch(B: int) -> None:
    rng = np.random.default_rng(B)
    f = rng.normal(size=(B, 12))
    g = f[:, :5] @ rng.normal(size=(5, 9)) + 0.5 * rng.normal(size=(B, 9))
    got = linear_cka(torch.tensor(f), torch.tensor(g)).item()
    assert got == pytest.approx(_np_cka(f, g), rel=1e-9, abs=1e-12)
    assert 0.0 < got <= 1.0


def test_cka_flattens_per_sample() -> None:
    rng = np.random.default_rng(3)
    f = rng.normal(size=(6, 2, 3, 3))
    g = rng.normal(size=(6, 4))
    got = linear_cka(torch.tensor(f), torch.tensor(g)).item()
    assert got == pytest.approx(_np_cka(f.reshape(6, -1), g), rel=1e-9)


def test_cka_invariances() -> None:
    rng = np.random.default_rng(4)
    f = torch.tensor(rng.normal(size=(10, 8)))
    g = torch.tensor(rng.normal(size=(10, 6)))
    base = linear_cka(f, g).item()
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(3.7 * f, g).item() == pytest.approx(base, rel=1e-6)
    assert linear_cka(f, 0.2 * g).item() == pytest.approx(base, rel=1e-6)
    assert linear_cka(f @ torch.tensor(q), g).item() == pytest.approx(base, rel=1e-9)
    assert linear_cka(f + 5.0, g).item() == pytest.approx(base, rel=1e-9)  # centring
    assert linear_cka(f, f).item() == pytest.approx(1.0, abs=1e-9)


def test_cka_single_sample_is_zero_with_finite_grad() -> None:
    f = torch.randn(1, 5, requires_grad=True)
    g = torch.randn(1, 3, requires_grad=True)
    c = linear_cka(f, g)
    c.backward()
    assert c.item() == 0.0
    assert torch.isfinite(f.grad).all() and torch.isfinite(g.grad).all()
    # Constant features (every sample alike) are the same degenerate case.
    h = torch.ones(4, 3, requires_grad=True)
    c2 = linear_cka(h, torch.randn(4, 2))
    c2.backward()
    assert c2.item() == 0.0 and torch.isfinite(h.grad).all()


def test_cka_bad_input() -> None:
    with pytest.raises(ValueError, match="batch sizes differ"):
        linear_cka(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="B, D"):
        linear_cka(torch.zeros(3), torch.zeros(3))


def test_domain_loss_value_and_gradients() -> None:
    T, B = 3, 5
    rng = np.random.default_rng(5)
    src = rng.normal(size=(T, B, 7))
    evt = rng.normal(size=(T, B, 2, 2))
    dom = DomainLoss(T).double()
    src_t = torch.tensor(src, requires_grad=True)
    loss, s = dom(src_t, torch.tensor(evt))
    s0 = 1 / (1 + np.exp(-1.0))
    assert torch.allclose(s, torch.full((T,), s0, dtype=torch.float64))
    expected = np.mean([s0 * (1 - abs(_np_cka(src[t], evt[t].reshape(B, -1)))) for t in range(T)])
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    loss.backward()
    assert dom.c.grad is not None and (dom.c.grad > 0).all()  # d/dc of s_t * (1 - |cka|) > 0
    assert src_t.grad is not None and src_t.grad.abs().sum() > 0


def test_domain_loss_partial_batch_and_bad_shapes() -> None:
    dom = DomainLoss(2)
    loss, _ = dom(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="T=2"):
        dom(torch.randn(3, 3, 4), torch.randn(3, 3, 4))
    with pytest.raises(ValueError, match="T=2"):
        dom(torch.randn(2, 3, 4), torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match="T must be"):
        DomainLoss(0)


def _np_bce_logits(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def test_mag_loss_layouts() -> None:
    rng = np.random.default_rng(6)
    T, B = 4, 3
    logits = rng.normal(size=(T, B))
    target_bt = (rng.random(size=(B, T)) < 0.5).astype(float)
    want = _np_bce_logits(logits, target_bt.T)
    got = mag_loss(torch.tensor(logits), torch.tensor(target_bt))
    assert got.item() == pytest.approx(want, rel=1e-10)
    got2 = mag_loss(torch.tensor(logits.T), torch.tensor(target_bt), logits_layout="BT")
    assert got2.item() == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError, match="do not match"):
        mag_loss(torch.tensor(logits), torch.tensor(target_bt.T))


def test_mag_loss_square_uses_declared_layout() -> None:
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(3, 3))  # T == B: shapes alone cannot tell the layout
    target_bt = np.triu(np.ones((3, 3)))
    got = mag_loss(torch.tensor(logits), torch.tensor(target_bt))
    assert got.item() == pytest.approx(_np_bce_logits(logits, target_bt.T), rel=1e-10)
    assert got.item() != pytest.approx(_np_bce_logits(logits, target_bt), rel=1e-6)


def test_mrp_loss_kinds() -> None:
    pred = np.array([0.1, 0.5, 0.9, 0.3])
    target = np.array([0.0, 0.6, 1.0, 0.3])
    got = mrp_loss(torch.tensor(pred), torch.tensor(target))
    assert got.item() == pytest.approx(np.mean((pred - target) ** 2), rel=1e-12)
    bce = -np.mean(target * np.log(pred) + (1 - target) * np.log(1 - pred))
    got = mrp_loss(torch.tensor(pred), torch.tensor(target), kind="bce")
    assert got.item() == pytest.approx(bce, rel=1e-10)
    with pytest.raises(ValueError, match="mse, bce"):
        mrp_loss(torch.tensor(pred), torch.tensor(target), kind="l1")
    with pytest.raises(ValueError, match="B"):
        mrp_loss(torch.tensor(pred), torch.tensor(target[:3]))


def test_cka_half_precision_is_computed_in_float32() -> None:
    rng = np.random.default_rng(8)
    f = rng.normal(size=(8, 300)) * 30  # Gram entries ~ 3e5 overflow float16 (max 65504)
    g = f @ rng.normal(size=(300, 20))
    got = linear_cka(torch.tensor(f).half(), torch.tensor(g).half())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(_np_cka(f, g), abs=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_losses_on_cuda_match_cpu() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(4, 6, 5), torch.randint(0, 5, (6,))
    w = torch.rand(4)
    cpu = tet_loss(logits, y, step_weights=w)
    gpu = tet_loss(logits.cuda(), y.cuda(), step_weights=w.cuda())
    assert gpu.is_cuda and gpu.item() == pytest.approx(cpu.item(), rel=1e-5)
    src, evt = torch.randn(4, 6, 10), torch.randn(4, 6, 7)
    dom = DomainLoss(4)
    loss_cpu, _ = dom(src, evt)
    loss_gpu, s = dom.cuda()(src.cuda(), evt.cuda())
    assert s.is_cuda and loss_gpu.item() == pytest.approx(loss_cpu.item(), rel=1e-4)
    mag = mag_loss(torch.randn(4, 6).cuda(), torch.ones(6, 4).cuda())
    assert mag.is_cuda and torch.isfinite(mag)


def test_cka_over_time_equals_per_step_cka_in_value_and_gradient() -> None:
    from tmkt.transfer.losses import linear_cka_over_time

    g = torch.Generator().manual_seed(3)
    fs = torch.randn(5, 7, 4, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    fe = torch.randn(5, 7, 4, 2, 2, generator=g, dtype=torch.float64)
    batched = linear_cka_over_time(fs, fe)
    loop = torch.stack([linear_cka(fs[t], fe[t]) for t in range(5)])
    assert torch.allclose(batched, loop, atol=1e-12)
    (gb,) = torch.autograd.grad(batched.sum(), fs)
    (gl,) = torch.autograd.grad(loop.sum(), fs)
    assert torch.allclose(gb, gl, atol=1e-12)
    one = linear_cka_over_time(fs[:, :1], fe[:, :1])  # B = 1: the formula's 0, finite
    assert torch.equal(one, torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="time/batch sizes differ"):
        linear_cka_over_time(fs, fe[:, :3])


def test_centred_gram_value_and_gradient_equal_the_plain_autograd_route() -> None:
    """One-matmul backward vs autograd through centring and x @ x^T, for an arbitrary (not
    symmetric, not centred) upstream gradient, and torch's own gradcheck."""
    from tmkt.transfer.losses import centred_gram

    g = torch.Generator().manual_seed(11)
    x = torch.randn(3, 6, 10, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(3, 6, 6, generator=g, dtype=torch.float64)
    xc = x - x.mean(dim=1, keepdim=True)
    ref = xc @ xc.transpose(1, 2)
    got = centred_gram(x)
    assert torch.allclose(got, ref, atol=1e-12)
    (g_ref,) = torch.autograd.grad(ref, x, up)
    (g_got,) = torch.autograd.grad(got, x, up)
    assert torch.allclose(g_got, g_ref, atol=1e-12)
    assert torch.autograd.gradcheck(centred_gram, (x[:, :4, :5].detach().requires_grad_(),))
    with pytest.raises(ValueError, match=r"\[T, B, D\]"):
        centred_gram(x[0])
