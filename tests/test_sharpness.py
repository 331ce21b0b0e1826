"""Known-answer tests for worker.sharpness (float64 models, dense Hessians as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from worker.sharpness import adam_preconditioner, top_hessian_eigenvalue


def mlp_problem(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """3 -> 12 -> 2 tanh MLP (74 parameters) with an MSE loss."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 12), torch.nn.Tanh(), torch.nn.Linear(12, 2)
    ).double()
    inputs = torch.randn(128, 3, dtype=torch.float64)
    targets = torch.randn(128, 2, dtype=torch.float64)
    return model, inputs, targets


def dense_hessian(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        tensors = torch.split(vector, [int(np.prod(s)) for s in shapes])
        weights = {n: t.reshape(s) for n, t, s in zip(names, tensors, shapes)}
        return torch.nn.functional.mse_loss(functional_call(model, weights, (inputs,)), targets)

    return torch.autograd.functional.hessian(loss, flat).numpy()


def test_linear_regression_quadratic() -> None:
    torch.manual_seed(1)
    x = torch.randn(200, 5, dtype=torch.float64) * torch.tensor([3.0, 1.0, 1.0, 0.5, 0.1])
    y = torch.randn(200, dtype=torch.float64)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    result = top_hessian_eigenvalue(lambda: ((x @ w - y) ** 2).mean(), [w])
    expected = np.linalg.eigvalsh(2.0 * (x.T @ x).numpy() / 200)[-1]  # H = 2 X^T X / n
    assert result.value == pytest.approx(expected, rel=1e-2)
    assert not result.preconditioned and result.hvps >= 1
    assert result.vector.shape == (5,) and float(result.vector.norm()) == pytest.approx(1.0)


def test_mlp_matches_dense_hessian() -> None:
    model, inputs, targets = mlp_problem()
    params = list(model.parameters())
    assert sum(p.numel() for p in params) <= 500
    result = top_hessian_eigenvalue(
        lambda: torch.nn.functional.mse_loss(model(inputs), targets), params
    )
    expected = np.linalg.eigvalsh(dense_hessian(model, inputs, targets))[-1]
    assert result.value == pytest.approx(expected, rel=1e-2)
    again = top_hessian_eigenvalue(
        lambda: torch.nn.functional.mse_loss(model(inputs), targets), params
    )
    assert again.value == result.value  # reproducible cold start


def test_warm_start_needs_fewer_products() -> None:
    model, inputs, targets = mlp_problem()
    params = list(model.parameters())

    def loss() -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(inputs), targets)

    previous = top_hessian_eigenvalue(loss, params)
    optimizer = torch.optim.SGD(params, lr=0.01)  # one small step: the Hessian barely moves
    optimizer.zero_grad()
    loss().backward()
    optimizer.step()
    cold = top_hessian_eigenvalue(loss, params)
    warm = top_hessian_eigenvalue(loss, params, v0=previous.vector)
    assert warm.value == pytest.approx(cold.value, rel=1e-3)
    assert warm.hvps < cold.hvps


def test_adam_preconditioned_sharpness() -> None:
    model, inputs, targets = mlp_problem(seed=2)
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-2)
    assert adam_preconditioner(optimizer, params) is None  # no state before the first step
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
    p = adam_preconditioner(optimizer, params)
    assert p is not None and p.shape == (74,)
    state = optimizer.state[params[0]]
    manual = (state["exp_avg_sq"] / (1 - 0.999**5)).sqrt() + 1e-8
    torch.testing.assert_close(p[: params[0].numel()], manual.reshape(-1))

    result = top_hessian_eigenvalue(
        lambda: torch.nn.functional.mse_loss(model(inputs), targets), params, preconditioner=p
    )
    scale = 1.0 / np.sqrt(p.numpy())
    hessian = dense_hessian(model, inputs, targets)
    expected = np.linalg.eigvalsh(scale[:, None] * hessian * scale[None, :])[-1]
    assert result.preconditioned
    assert result.value == pytest.approx(expected, rel=1e-2)


def test_bad_inputs() -> None:
    w = torch.ones(4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError):
        top_hessian_eigenvalue(lambda: (w * float("nan")).sum(), [w])
    with pytest.raises(ValueError):
        top_hessian_eigenvalue(lambda: (w**2).sum(), [w], v0=torch.ones(3))
    with pytest.raises(ValueError):
        top_hessian_eigenvalue(lambda: (w**2).sum(), [w], preconditioner=-torch.ones(4))


def test_tiny_parameter_vector() -> None:
    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    result = top_hessian_eigenvalue(lambda: 3.0 * w[0] ** 2 + w[0] * w[1] - w[1] ** 2, [w])
    expected = np.linalg.eigvalsh(np.array([[6.0, 1.0], [1.0, -2.0]]))[-1]
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.hvps == 2
