"""Gradient-variance estimator against per-batch gradients computed by hand in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tmkt.analysis.gradvar import gradient_variance


def _data(seed: int, k: int, n: int = 5, d: int = 3):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n, d)), rng.normal(size=n)) for _ in range(k)]


def _linear(w: np.ndarray, b: float) -> nn.Linear:
    lin = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w)[None, :])
        lin.bias.fill_(b)
    return lin


def _np_grads(w: np.ndarray, b: float, batches) -> np.ndarray:
    """Gradient of 0.5 mean((X w + b - y)^2): (X^T r / n, mean r), r the residual."""
    rows = []
    for x, y in batches:
        r = x @ w + b - y
        rows.append(np.concatenate([x.T @ r / len(y), [r.mean()]]))
    return np.array(rows)


def _loss_fn(model: nn.Module):
    def fn(batch):
        x, y = batch
        return 0.5 * ((model(torch.tensor(x)).squeeze(-1) - torch.tensor(y)) ** 2).mean()

    return fn


def test_matches_numpy_trace_of_covariance() -> None:
    w, b = np.array([0.3, -1.2, 0.7]), 0.4
    batches = _data(0, k=7)
    model = _linear(w, b)
    res = gradient_variance(model, _loss_fn(model), batches)
    g = _np_grads(w, b, batches)  # [K, P], weight columns first as in model.parameters()
    assert res.k == 7
    assert res.trace_cov == pytest.approx(np.trace(np.cov(g, rowvar=False, ddof=1)), rel=1e-10)
    assert res.mean_grad_norm_sq == pytest.approx(float(g.mean(0) @ g.mean(0)), rel=1e-10)
    assert res.noise_to_signal == pytest.approx(res.trace_cov / res.mean_grad_norm_sq)


def test_param_subset_and_identical_batches() -> None:
    w, b = np.array([1.0, 2.0, -0.5]), -0.1
    batches = _data(1, k=4)
    model = _linear(w, b)
    res = gradient_variance(model, _loss_fn(model), batches, params=[model.weight])
    g = _np_grads(w, b, batches)[:, :3]
    assert res.trace_cov == pytest.approx(np.var(g, axis=0, ddof=1).sum(), rel=1e-10)
    same = gradient_variance(model, _loss_fn(model), [batches[0]] * 5)
    assert same.trace_cov == pytest.approx(0.0, abs=1e-20)
    assert same.k == 5


def test_model_left_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model[0].weight.grad = torch.full_like(model[0].weight, 7.0)
    batches = _data(2, k=3, n=6)
    res = gradient_variance(model, _loss_fn(model), batches)
    assert res.trace_cov > 0
    assert model.training and model[1].training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # incl. BatchNorm running stats and counter
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 7.0))
    assert model[2].weight.grad is None


def test_errors() -> None:
    model = _linear(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        gradient_variance(model, _loss_fn(model), _data(3, k=1))
    with pytest.raises(ValueError, match="scalar"):
        gradient_variance(model, lambda batch: model(torch.tensor(batch[0])), _data(3, k=2))
    with pytest.raises(ValueError, match="require grad"):
        gradient_variance(model, _loss_fn(model), _data(3, k=2), params=[])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_numpy() -> None:
    w, b = np.array([0.3, -1.2, 0.7]), 0.4
    batches = _data(4, k=5)
    model = _linear(w, b).cuda()

    def fn(batch):
        x, y = (torch.tensor(a, device="cuda") for a in batch)
        return 0.5 * ((model(x).squeeze(-1) - y) ** 2).mean()

    res = gradient_variance(model, fn, batches)
    g = _np_grads(w, b, batches)
    assert res.trace_cov == pytest.approx(np.trace(np.cov(g, rowvar=False, ddof=1)), rel=1e-8)
