"""The student network and the paper's neuron initialisations.

A two-layer sigmoid MLP without biases whose one parameter is the neuron matrix: row i is hidden unit i's
neuron x_i = (its input weights, its output weights), as in the paper. A snapshot is a copy of it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class NeuronMLP(nn.Module):
    def __init__(self, in_dim: int, width: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.neurons = nn.Parameter(torch.empty(width, in_dim + out_dim))

    @property
    def w_in(self) -> torch.Tensor:
        """(width, in_dim): each hidden unit's input weights."""
        return self.neurons[:, : self.in_dim]

    @property
    def w_out(self) -> torch.Tensor:
        """(width, out_dim): each hidden unit's output weights."""
        return self.neurons[:, self.in_dim :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x @ self.w_in.T) @ self.w_out

    @torch.no_grad()
    def set_neurons(self, neurons: torch.Tensor) -> None:
        self.neurons.copy_(neurons)


def _squeeze_w(points: np.ndarray) -> np.ndarray:
    # The paper maps the first (input-weight) coordinate by w -> 0.1 w - 2.
    points = points.copy()
    points[:, 0] = 0.1 * points[:, 0] - 2.0
    return points


def figure_eight(width: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.0, 2 * math.pi, size=width)
    return np.stack([0.1 * np.sin(t) - 2.0, np.sin(2 * t)], axis=1)


def two_circles(width: int, rng: np.random.Generator) -> np.ndarray:
    upper = width // 2
    angles = np.concatenate([np.linspace(0, 2 * math.pi, upper, endpoint=False),
                             np.linspace(0, 2 * math.pi, width - upper, endpoint=False)])
    centres = np.where(np.arange(width) < upper, 1.2, -1.2)
    points = np.stack([np.cos(angles), centres + np.sin(angles)], axis=1)
    order = rng.permutation(width)  # neuron index carries no geometry
    return _squeeze_w(points[order])


def _double_torus_sdf(p: np.ndarray, major: float = 0.5, minor: float = 0.2, offset: float = 0.8,
                      blend: float = 0.5) -> np.ndarray:
    """Signed distance to two solid tori centred at x = +-offset, joined by a polynomial smooth minimum."""
    def torus(cx: float) -> np.ndarray:
        ring = np.hypot(p[:, 0] - cx, p[:, 1]) - major
        return np.hypot(ring, p[:, 2]) - minor

    a, b = torus(-offset), torus(offset)
    h = np.clip(blend - np.abs(a - b), 0.0, None) / blend
    return np.minimum(a, b) - h * h * blend / 4.0


def double_torus(width: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform samples inside a rotated solid genus-2 surface, first coordinate squeezed."""
    samples: list[np.ndarray] = []
    count = 0
    while count < width:
        box = rng.uniform([-1.6, -0.8, -0.3], [1.6, 0.8, 0.3], size=(4 * width, 3))
        inside = box[_double_torus_sdf(box) < 0]
        samples.append(inside)
        count += len(inside)
    points = np.concatenate(samples)[:width]
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    rotation = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return _squeeze_w(points @ rotation.T)


def sphere_in_subspace(width: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Evenly spread on a unit 2-sphere lying in a random 3-D subspace of R^dim (b0=1, b1=0, b2=1).

    A Fibonacci lattice rather than i.i.d. samples: 256 random points leave holes that read as spurious
    H1 bars at the paper's scale, while an even spread reads (1, 0, 1) there from step 0."""
    i = np.arange(width) + 0.5
    polar = np.arccos(1 - 2 * i / width)
    azimuth = math.pi * (1 + math.sqrt(5)) * i
    directions = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 3)))
    return directions[rng.permutation(width)] @ basis.T


def initial_neurons(init: str, width: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    if init == "figure-eight":
        return figure_eight(width, rng)
    if init == "two-circles":
        return two_circles(width, rng)
    if init == "double-torus":
        return double_torus(width, rng)
    if init == "sphere":
        return sphere_in_subspace(width, dim, rng)
    raise ValueError(f"unknown initialisation {init!r}")
