"""Known-answer tests for backend.topology."""

from __future__ import annotations

import gudhi
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from backend.topology import (
    betti_at_scale,
    bottleneck,
    diagram_distance,
    diameter,
    persistence,
    persistent_counts,
    standardise,
)


def circle(n: int, radius: float = 1.0, centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.c_[centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)]


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = np.pi * (1.0 + 5.0**0.5) * i
    return np.c_[
        np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)
    ]


def pad(points: np.ndarray, dim: int) -> np.ndarray:
    """Same cloud in R^dim (zero extra coordinates): same distances, Rips path."""
    return np.hstack((points, np.zeros((len(points), dim - points.shape[1]))))


def lengths(diagram: np.ndarray) -> np.ndarray:
    return diagram[:, 1] - diagram[:, 0]


def test_circle_has_one_dominant_loop() -> None:
    p = persistence(circle(100))
    h1 = lengths(p.diagrams[1])
    assert p.method == "alpha"
    assert h1[0] > 5 * h1[1:].max(initial=0.0)
    assert p.diagrams[1][0, 1] == pytest.approx(2.0)  # alpha: dies at the circumdiameter


def test_two_clusters_give_two_long_h0_bars_one_infinite() -> None:
    rng = np.random.default_rng(0)
    cloud = np.vstack((rng.normal(0, 0.1, (50, 2)), rng.normal(0, 0.1, (50, 2)) + [10.0, 0.0]))
    h0 = persistence(cloud).diagrams[0]
    long = h0[lengths(h0) > 5.0]
    assert len(long) == 2
    assert np.isinf(long[:, 1]).sum() == 1
    assert np.isinf(h0[:, 1]).sum() == 1


@pytest.mark.parametrize("dim", [2, 5])  # alpha path, Rips path
def test_tiny_clouds_and_duplicates(dim: int) -> None:
    empty = persistence(np.zeros((0, dim)), max_dim=2)
    assert all(d.shape == (0, 2) for d in empty.diagrams.values())
    assert set(empty.diagrams) == {0, 1, 2}

    one = persistence(np.ones((1, dim)), max_dim=2)
    np.testing.assert_array_equal(one.diagrams[0], [[0.0, np.inf]])

    two = persistence(pad(np.array([[0.0, 0.0], [1.0, 0.0]]), dim))
    np.testing.assert_allclose(two.diagrams[0], [[0.0, np.inf], [0.0, 1.0]])

    three = persistence(pad(np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]), dim), max_dim=2)
    np.testing.assert_allclose(three.diagrams[0], [[0.0, np.inf], [0.0, 2.0], [0.0, 1.0]])
    assert len(three.diagrams[1]) == len(three.diagrams[2]) == 0

    # Duplicates only add zero-length H0 bars, which are dropped.
    dup = persistence(pad(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), dim))
    np.testing.assert_allclose(dup.diagrams[0], [[0.0, np.inf], [0.0, 1.0]])
    same = persistence(np.zeros((7, dim)))
    np.testing.assert_array_equal(same.diagrams[0], [[0.0, np.inf]])


def test_diagrams_are_sorted_read_only_and_bar_free_of_zero_length() -> None:
    p = persistence(np.random.default_rng(1).normal(size=(300, 2)))
    for d in p.diagrams.values():
        assert d.dtype == np.float64 and not d.flags.writeable
        assert (lengths(d) > 0).all()
        assert (np.diff(lengths(d)) <= 0).all()


def test_betti_circle() -> None:
    p = persistence(circle(100), max_dim=2)
    assert betti_at_scale(p, 0.5) == [1, 1, 0]
    assert betti_at_scale(p, 0.01) == [100, 0, 0]  # below the sample spacing
    assert persistent_counts(p, 1.0) == [1, 1, 0]


def test_betti_figure_eight_of_tangent_circles() -> None:
    eight = np.vstack((circle(100, centre=(0.0, 1.0)), circle(100, centre=(0.0, -1.0))))
    eight = np.unique(eight.round(12), axis=0)  # the tangent point is shared
    assert betti_at_scale(persistence(eight, max_dim=2), 0.5) == [1, 2, 0]


def test_betti_sphere_in_r3() -> None:
    p = persistence(fibonacci_sphere(400), max_dim=2)
    assert p.method == "alpha"
    assert betti_at_scale(p, 0.25 * 2.0) == [1, 0, 1]


def test_betti_sphere_in_r74_uses_landmarks() -> None:
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(74, 3)))  # random orthonormal 3-D subspace
    cloud = fibonacci_sphere(400) @ basis.T + rng.normal(size=74)
    p = persistence(cloud, max_dim=2)
    assert p.method == "rips-landmarks"
    assert p.n_points_used < 400 and 0.0 < p.cover_radius < 0.25
    assert np.isfinite(p.max_scale)
    assert betti_at_scale(p, 0.25 * diameter(cloud)) == [1, 0, 1]  # the paper's scale


def test_standardise() -> None:
    rng = np.random.default_rng(2)
    t = rng.uniform(0.0, 2.0 * np.pi, 500)
    eight = np.c_[0.1 * np.sin(t) - 2.0, np.sin(2.0 * t), np.full(500, 3.0)]
    z = standardise(eight)
    np.testing.assert_allclose(z[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1.0)
    np.testing.assert_array_equal(z[:, 2], 0.0)  # constant column
    # The pitfall: at 0.25 x diameter the squeezed eight's loops are filled in, not once
    # standardised.
    raw = persistence(eight[:, :2], max_dim=1)
    assert betti_at_scale(raw, 0.25 * diameter(eight[:, :2]))[1] == 0
    std = persistence(z[:, :2], max_dim=1)
    assert betti_at_scale(std, 0.25 * diameter(z[:, :2])) == [1, 2]


def test_diameter() -> None:
    assert diameter(np.zeros((1, 3))) == 0.0
    assert diameter(circle(64)) == pytest.approx(2.0)
    assert diameter(np.c_[np.arange(50.0), np.zeros(50)]) == pytest.approx(49.0)  # flat hull
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(1500, 40))
    assert diameter(wide) == pytest.approx(pdist(wide).max(), rel=1e-12)  # Gram-block path


def test_alpha_and_rips_agree_on_h0() -> None:
    cloud = np.random.default_rng(4).normal(size=(200, 2))
    alpha = persistence(cloud, max_dim=0)
    rips = persistence(pad(cloud, 5), max_dim=0)
    assert (alpha.method, rips.method) == ("alpha", "rips")
    np.testing.assert_allclose(alpha.diagrams[0], rips.diagrams[0], rtol=1e-6)


def test_bottleneck_known_values() -> None:
    dgm = np.array([[0.0, np.inf], [0.1, 1.0], [0.2, 1.5], [0.5, 0.9]])
    assert bottleneck(dgm, dgm) == pytest.approx(0.0, abs=1e-12)  # gudhi: within an ulp or so
    assert bottleneck(dgm, dgm + 0.05) == pytest.approx(0.05)  # every bar moved by 0.05
    h0 = np.array([[0.0, np.inf], [0.0, 2.0], [0.0, 1.0], [0.0, 0.6]])
    shifted = h0.copy()
    shifted[1:, 1] += 0.1
    assert bottleneck(h0, shifted) == pytest.approx(0.1)
    assert bottleneck(h0, h0[1:]) == np.inf  # an infinite bar cannot vanish
    assert bottleneck(h0[1:], h0[1:2]) == pytest.approx(0.5)  # bars sent to the diagonal
    assert bottleneck(np.empty((0, 2)), np.empty((0, 2))) == 0.0


def test_equal_birth_bottleneck_matches_gudhi_exact() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        a = np.c_[np.zeros(n := rng.integers(0, 8)), rng.exponential(size=n)]
        b = np.c_[np.zeros(m := rng.integers(0, 8)), rng.exponential(size=m)]
        assert bottleneck(a, b) == pytest.approx(gudhi.bottleneck_distance(a, b, 0.0), abs=1e-12)


def test_diagram_distance() -> None:
    cloud = circle(100)
    p = persistence(cloud)
    assert diagram_distance(p, p) == 0.0
    scaled = persistence(cloud * 1.1)  # every filtration value x1.1
    assert diagram_distance(p, scaled) == pytest.approx(0.2, rel=1e-6)  # the H1 death 2 -> 2.2
