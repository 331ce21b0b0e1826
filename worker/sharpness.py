"""Sharpness: the top eigenvalue of the training-loss Hessian, by Hessian-vector products.

Lanczos (ARPACK via scipy's eigsh) on a matrix-free operator: each product is one
double-backward pass through a gradient graph built once per call. With Adam, the relevant
quantity is the preconditioned sharpness, the top eigenvalue of P^{-1/2} H P^{-1/2} (same
spectrum as P^{-1} H; Cohen et al. 2022), where P = sqrt(v_hat) + eps is Adam's denominator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

# Lanczos basis size. Small on purpose: a warm start close to the top eigenvector converges in
# the first basis (LANCZOS_NCV + 1 products), while a cold start restarts a few times. eigsh's
# default (20) makes every call cost >= 21 products, warm or not; 4 gets fragile when the top
# eigenvalue is nearly degenerate (measured on synthetic spectra).
LANCZOS_NCV = 6


@dataclass(frozen=True, eq=False)  # eq=False: field-wise == on tensors is ambiguous
class Sharpness:
    """value: top eigenvalue; vector: its unit eigenvector (flat float64 CPU tensor, in the
    preconditioned coordinates when preconditioned) for warm-starting the next call;
    hvps: Hessian-vector products spent; preconditioned: whether value is Adam's P^{-1}H one."""

    value: float
    vector: torch.Tensor
    hvps: int
    preconditioned: bool


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def top_hessian_eigenvalue(
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    v0: torch.Tensor | None = None,
    preconditioner: torch.Tensor | None = None,
    tol: float = 1e-3,
    max_iter: int = 100,
) -> Sharpness:
    """Largest algebraic eigenvalue of the Hessian of loss_fn() w.r.t. params (flattened in
    order), or of P^{-1/2} H P^{-1/2} with a flat positive `preconditioner` P.

    v0: the previous call's Sharpness.vector (warm start); without it the start is a fixed
    pseudo-random vector, so results are reproducible. tol is ARPACK's relative residual
    tolerance, max_iter its restart limit (ArpackNoConvergence, a RuntimeError, past it).
    The caller chooses the data and the module mode (eval); nothing here changes either.
    Raises ValueError for a non-finite loss or mis-sized v0/preconditioner.
    """
    params = list(params)
    loss = loss_fn()
    if not torch.isfinite(loss):
        raise ValueError(f"loss is not finite ({loss.item()})")
    # One gradient graph per call, reused by every product (retain_graph below).
    grad = _flat(
        torch.autograd.grad(loss, params, create_graph=True, materialize_grads=True)
    )
    n = grad.numel()
    scale = None
    if preconditioner is not None:
        p = preconditioner.detach().reshape(-1).to("cpu", torch.float64).numpy()
        if p.shape != (n,) or not (p > 0).all():
            raise ValueError(f"preconditioner must be {n} positive numbers")
        scale = 1.0 / np.sqrt(p)
    hvps = 0

    def matvec(u: np.ndarray) -> np.ndarray:
        nonlocal hvps
        hvps += 1
        w = u.reshape(-1) if scale is None else u.reshape(-1) * scale
        w_t = torch.as_tensor(w, dtype=grad.dtype, device=grad.device)
        hv = torch.autograd.grad(
            grad, params, grad_outputs=w_t, retain_graph=True, materialize_grads=True
        )
        out = _flat(hv).detach().to("cpu", torch.float64).numpy()
        return out if scale is None else out * scale

    if v0 is None:
        start = np.random.default_rng(0).standard_normal(n)
    else:
        start = v0.detach().reshape(-1).to("cpu", torch.float64).numpy()
        if start.shape != (n,):
            raise ValueError(f"v0 has {start.size} entries, the parameters {n}")

    if n <= LANCZOS_NCV:  # the basis would span the space: build the matrix from n products
        dense = np.stack([matvec(e) for e in np.eye(n)], axis=1)
        values, vectors = np.linalg.eigh((dense + dense.T) / 2)
    else:
        operator = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        values, vectors = eigsh(
            operator,
            k=1,
            which="LA",
            v0=start,
            ncv=LANCZOS_NCV,
            tol=tol,
            maxiter=max_iter,
        )
    vector = vectors[:, -1] / np.linalg.norm(vectors[:, -1])
    return Sharpness(float(values[-1]), torch.from_numpy(vector.copy()), hvps, scale is not None)


def adam_preconditioner(
    optimizer: torch.optim.Adam, params: Sequence[torch.Tensor]
) -> torch.Tensor | None:
    """Adam's per-parameter denominator sqrt(v_hat) + eps (flat, in params order), with the
    same bias correction and amsgrad choice as torch's update; None before the first step."""
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    parts = []
    for p in params:
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state:
            return None
        group = groups[id(p)]
        beta2 = group["betas"][1]
        v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
        v_hat = v / (1.0 - beta2 ** float(state["step"]))
        parts.append((v_hat.sqrt() + group["eps"]).reshape(-1))
    return torch.cat(parts).detach()
