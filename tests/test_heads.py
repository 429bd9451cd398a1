"""MAG and MRP heads: shapes, the exact affine maps they compute, and that they can learn."""

from __future__ import annotations

import pytest
import torch

from tmkt.transfer.heads import MAGHead, MRPHead
from tmkt.transfer.losses import mag_loss, mrp_loss


def test_mag_head_is_per_step_linear() -> None:
    torch.manual_seed(0)
    head = MAGHead(6)
    feat = torch.randn(4, 3, 6)
    out = head(feat)
    assert out.shape == (4, 3)
    want = feat @ head.fc.weight[0] + head.fc.bias[0]
    assert torch.allclose(out, want, atol=1e-6)


def test_mrp_head_uses_time_mean() -> None:
    torch.manual_seed(1)
    head = MRPHead(5)
    feat = torch.randn(7, 2, 5)
    rho = head(feat)
    assert rho.shape == (2,)
    want = torch.sigmoid(feat.mean(0) @ head.mlp.weight[0] + head.mlp.bias[0])
    assert torch.allclose(rho, want, atol=1e-6)
    assert bool(((rho > 0) & (rho < 1)).all())
    # Permuting time steps does not change a time-averaged prediction.
    assert torch.allclose(head(feat.flip(0)), rho, atol=1e-6)


def test_mrp_head_two_layers() -> None:
    head = MRPHead(5, hidden=8)
    assert sum(isinstance(m, torch.nn.Linear) for m in head.modules()) == 2
    assert head(torch.randn(3, 4, 5)).shape == (4,)


def test_heads_reject_bad_features() -> None:
    with pytest.raises(ValueError, match=r"\[T, B, 6\]"):
        MAGHead(6)(torch.randn(3, 6))
    with pytest.raises(ValueError, match=r"\[T, B, 5\]"):
        MRPHead(5)(torch.randn(3, 2, 4))
    with pytest.raises(ValueError):
        MRPHead(5, hidden=-1)


def test_heads_learn_separable_targets() -> None:
    # Event frames carry +1 in feature 0, static frames -1: both heads must fit this quickly.
    torch.manual_seed(2)
    T, B, F = 6, 32, 4
    tstar = torch.randint(0, T + 1, (B,))
    mask_bt = torch.arange(T)[None, :] >= tstar[:, None]
    feat = torch.randn(T, B, F) * 0.1
    feat[..., 0] += mask_bt.T.float() * 2 - 1
    rho = mask_bt.float().mean(1)
    mag, mrp = MAGHead(F), MRPHead(F)
    opt = torch.optim.Adam([*mag.parameters(), *mrp.parameters()], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        loss = mag_loss(mag(feat), mask_bt.float()) + mrp_loss(mrp(feat), rho)
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert ((mag(feat) > 0) == mask_bt.T).float().mean().item() == 1.0
        pred = mrp(feat)
        # sigmoid(linear) cannot be exactly linear in rho; it must still track it closely.
        assert torch.corrcoef(torch.stack([pred, rho]))[0, 1].item() > 0.98
        assert ((pred - rho) ** 2).mean().item() < 0.1 * rho.var().item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_heads_on_cuda() -> None:
    feat = torch.randn(3, 4, 5, device="cuda")
    assert MAGHead(5).cuda()(feat).shape == (3, 4)
    rho = MRPHead(5, hidden=4).cuda()(feat)
    assert rho.is_cuda and rho.shape == (4,)
