"""Known-answer tests for backend.embedding (UMAP's numba JIT is paid once, module-scoped)."""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/topowatch-numba")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402

from backend.embedding import pca_basis, project, umap_embed, warm_up  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _jit() -> None:
    warm_up()


def noisy_circle(n: int = 300, dim: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 2.0 * np.pi, n)
    cloud = np.zeros((n, dim))
    cloud[:, 0], cloud[:, 1] = np.cos(t), np.sin(t)
    return cloud + 0.02 * rng.normal(size=cloud.shape)


def test_pca_recovers_a_plane_in_r10() -> None:
    rng = np.random.default_rng(0)
    frame, _ = np.linalg.qr(rng.normal(size=(10, 2)))
    cloud = rng.normal(size=(200, 2)) * [3.0, 1.0] @ frame.T + rng.normal(size=10)
    basis = pca_basis(cloud, n_components=3)
    assert basis.components.shape == (3, 10)
    coords = project(cloud, basis)
    np.testing.assert_allclose(pdist(coords[:, :2]), pdist(cloud), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(coords[:, 2], 0.0, atol=1e-9)  # nothing off the plane
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-9)


def test_pca_sign_is_deterministic() -> None:
    cloud = noisy_circle(dim=6)
    basis = pca_basis(cloud)
    top = basis.components[np.arange(3), np.argmax(np.abs(basis.components), axis=1)]
    assert (top > 0).all()
    flipped = pca_basis(cloud[::-1])  # same cloud, other order: same basis
    np.testing.assert_allclose(flipped.components, basis.components, atol=1e-10)


def test_pca_pads_rank_deficient_reference() -> None:
    basis = pca_basis(np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]), n_components=3)
    np.testing.assert_allclose(basis.components[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(basis.components[1:], 0.0)


def test_umap_shape_scale_and_determinism() -> None:
    cloud = noisy_circle()
    y = umap_embed(cloud, None, seed=1)
    assert y.shape == (300, 2) and np.isfinite(y).all()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-9)
    assert np.sqrt(np.mean(np.sum(y * y, axis=1))) == pytest.approx(1.0)
    np.testing.assert_array_equal(umap_embed(cloud, None, seed=1), y)
    np.testing.assert_array_equal(umap_embed(cloud, y, seed=1), umap_embed(cloud, y, seed=1))
    assert umap_embed(cloud, None, seed=0, n_components=3).shape == (300, 3)


def test_umap_warm_start_is_coherent() -> None:
    cloud = noisy_circle()
    previous = umap_embed(cloud, None)
    nudged = cloud + 0.005 * np.random.default_rng(1).normal(size=cloud.shape)
    current = umap_embed(nudged, previous)
    displacement = np.linalg.norm(current - previous, axis=1)
    assert np.median(displacement) < 0.1  # the view's RMS radius is 1


def test_umap_tiny_clouds() -> None:
    assert umap_embed(np.zeros((0, 5)), None).shape == (0, 2)
    three = umap_embed(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]), None)
    assert three.shape == (3, 2)
    np.testing.assert_allclose(pdist(three[:, :1]) / pdist(three[:, :1]).max(), [1 / 3, 1, 2 / 3])
    assert umap_embed(noisy_circle(n=5), None).shape == (5, 2)
    with pytest.raises(ValueError):
        umap_embed(noisy_circle(n=10), np.zeros((9, 2)))
