"""Known-answer tests for backend.distortion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from backend.distortion import (
    default_merge_tol,
    distortion,
    duplicate_count,
    knn_preservation,
    merge_clusters,
    merges,
    pair_indices,
)


def linear_map_cloud() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A = U diag(3, 1.5, 0.5) V^T and a cloud containing pairs along V's columns."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    v, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    a = u @ np.diag([3.0, 1.5, 0.5]) @ v.T
    centre = rng.normal(size=3)
    cloud = np.vstack((rng.normal(size=(200, 3)), centre, centre + v[:, 0], centre + v[:, 2]))
    return a, cloud, cloud @ a.T


def test_linear_map_ratios_are_the_singular_values() -> None:
    a, before, after = linear_map_cloud()
    d = distortion(before, after, lr=0.1, steps=1)
    assert d.ratio_max == pytest.approx(3.0, abs=1e-6)  # attained by the pair along v1
    assert d.ratio_min == pytest.approx(0.5, abs=1e-6)  # attained by the pair along v3
    assert d.all_pairs and d.n_pairs == 203 * 202 // 2 and d.steps == 1
    # The step moved x by (A - I) x: swap ratios peak at sigma_max(A - I).
    swap = np.linalg.svd(a - np.eye(3), compute_uv=False)[0]
    assert d.swap_max <= swap + 1e-9 and d.swap_max > 0.9 * swap
    assert d.k_emp == pytest.approx(d.swap_max / 0.1)
    assert d.eta_star_emp == pytest.approx(1.0 / d.k_emp)
    assert d.ratio_min_per_step == d.ratio_min and d.ratio_max_per_step == d.ratio_max


def test_per_step_roots_over_an_interval() -> None:
    _, before, after = linear_map_cloud()
    d = distortion(before, after, lr=0.01, steps=4)
    assert d.ratio_max_per_step == pytest.approx(3.0**0.25, abs=1e-6)
    assert d.ratio_min_per_step == pytest.approx(0.5**0.25, abs=1e-6)
    assert d.k_emp == pytest.approx(((1.0 + d.swap_max) ** 0.25 - 1.0) / 0.01)


def test_rigid_translation_has_no_distortion() -> None:
    cloud = np.random.default_rng(1).normal(size=(50, 2))
    d = distortion(cloud, cloud + [5.0, -2.0], lr=0.1, steps=3)
    assert d.ratio_min == pytest.approx(1.0) and d.ratio_max == pytest.approx(1.0)
    assert d.swap_max == pytest.approx(0.0, abs=1e-12)
    assert d.k_emp == pytest.approx(0.0, abs=1e-9)


def test_duplicates_are_excluded_and_degenerate_inputs() -> None:
    cloud = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    d = distortion(cloud, cloud * 2.0, lr=1.0, steps=1)
    assert d.n_pairs == 2  # the duplicate pair can never split
    assert d.ratio_min == pytest.approx(2.0) and d.ratio_max == pytest.approx(2.0)
    same = distortion(np.zeros((4, 2)), np.ones((4, 2)), lr=1.0, steps=1)
    assert same.n_pairs == 0 and np.isnan(same.ratio_max)
    d0 = distortion(cloud, cloud, lr=1.0, steps=1)
    assert d0.k_emp == 0.0 and d0.eta_star_emp == np.inf
    with pytest.raises(ValueError):
        distortion(cloud, np.full_like(cloud, np.nan), lr=1.0, steps=1)
    with pytest.raises(ValueError):
        distortion(cloud, cloud, lr=0.1, steps=0)


def test_sampled_pairs_above_the_cap() -> None:
    rng = np.random.default_rng(2)
    before = rng.normal(size=(300, 3))
    after = before + 0.05 * rng.normal(size=before.shape)
    full = distortion(before, after, lr=0.1, steps=1)
    sampled = distortion(before, after, lr=0.1, steps=1, max_pairs=5000, seed=3)
    assert not sampled.all_pairs and sampled.n_pairs == 5000
    assert full.ratio_min <= sampled.ratio_min <= sampled.ratio_max <= full.ratio_max
    assert sampled.swap_max <= full.swap_max
    assert distortion(before, after, 0.1, 1, max_pairs=5000, seed=3) == sampled


def test_pair_indices() -> None:
    i, j, every = pair_indices(10, max_pairs=45, seed=0)
    assert every and len(i) == 45 and (i < j).all()
    i, j, every = pair_indices(100, max_pairs=1000, seed=7)
    assert not every and len(i) == 1000
    assert (0 <= i).all() and (i < j).all() and (j < 100).all()
    assert len(set(zip(i.tolist(), j.tolist()))) == 1000  # distinct
    i2, j2, _ = pair_indices(100, max_pairs=1000, seed=7)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_array_equal(j, j2)
    i3, j3, _ = pair_indices(100, max_pairs=1000, seed=8)
    assert not (np.array_equal(i, i3) and np.array_equal(j, j3))
    assert len(pair_indices(2048, seed=0)[0]) == 2048 * 2047 // 2  # default cap: every pair
    for n in (0, 1):
        i, j, every = pair_indices(n, max_pairs=10, seed=0)
        assert len(i) == len(j) == 0 and every


def test_a_step_that_merges_two_points_counts_one_merge() -> None:
    before = np.c_[np.arange(10.0), np.zeros(10)]
    after = before.copy()
    after[1] = [0.0, 1e-6]  # neuron 1 lands on neuron 0
    tol = default_merge_tol(before)
    assert tol == pytest.approx(1e-2)  # 1% of the neighbour spacing 1.0
    assert merge_clusters(before, tol) == 10 and merge_clusters(after, tol) == 9
    assert merges(before, after, tol) == 1
    assert merges(after, before, tol) == 0  # splitting is not a merge
    after[1] = after[0]
    assert merge_clusters(after, 0.0) == 9  # tol 0 still joins exact duplicates
    assert merge_clusters(np.empty((0, 2)), 1.0) == 0


def test_duplicate_count() -> None:
    cloud = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    assert duplicate_count(cloud) == 3
    assert duplicate_count(np.random.default_rng(3).normal(size=(100, 4))) == 0


def test_knn_preservation_rigid_motion_is_one() -> None:
    rng = np.random.default_rng(4)
    cloud = rng.normal(size=(300, 3))
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = cloud @ rotation.T + [10.0, -3.0, 2.0]
    np.testing.assert_array_equal(knn_preservation(cloud, moved, k=10), 1.0)
    ring = np.c_[np.cos(np.arange(60) * np.pi / 30), np.sin(np.arange(60) * np.pi / 30)]
    turn = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    # Evenly spaced: the 3rd neighbour is a tie that rounding must not break.
    np.testing.assert_array_equal(knn_preservation(ring, ring @ turn.T + 1.0, k=3), 1.0)


def test_knn_preservation_drops_at_a_tear() -> None:
    t = np.linspace(0.0, 2.0 * np.pi, 200, endpoint=False)
    circle = np.c_[np.cos(t), np.sin(t)]
    opened = np.c_[4.0 * t, np.zeros_like(t)]  # cut at t = 0 and stretched into a segment
    kept = knn_preservation(circle, opened, k=10)
    assert kept.mean() < 1.0
    near_cut = np.minimum(np.arange(200), 200 - np.arange(200)) < 5
    assert kept[near_cut].max() < 1.0 and kept[~near_cut].min() > kept[near_cut].min()
    assert kept[0] == pytest.approx(0.5)  # the neighbours across the cut are gone
    np.testing.assert_array_equal(kept[20:180], 1.0)


def test_knn_preservation_small_clouds() -> None:
    assert knn_preservation(np.zeros((1, 2)), np.zeros((1, 2))).tolist() == [1.0]
    three = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_array_equal(knn_preservation(three, three, k=10), 1.0)  # k clipped to 2


def test_wide_neurons_match_exact_differences() -> None:
    """D > 32 takes the Gram-matrix path; close pairs must still be exact."""
    rng = np.random.default_rng(5)
    before = rng.normal(size=(300, 40)) + 50.0  # far from the origin: Gram cancellation
    before[1] = before[0] + 1e-7 * rng.normal(size=40)  # a near pair ...
    before[2] = before[0]  # ... and an exact duplicate
    after = before + 0.01 * rng.normal(size=before.shape)
    after[1] = after[0] + 3e-7 * rng.normal(size=40)
    a, b, c = (pdist(z, "sqeuclidean") for z in (before, after, after - before))
    valid = a > 0
    d = distortion(before, after, lr=0.1, steps=1)
    assert d.n_pairs == valid.sum() == 300 * 299 // 2 - 1
    assert d.ratio_min == pytest.approx(np.sqrt((b[valid] / a[valid]).min()), rel=1e-9)
    assert d.ratio_max == pytest.approx(np.sqrt((b[valid] / a[valid]).max()), rel=1e-9)
    assert d.swap_max == pytest.approx(np.sqrt((c[valid] / a[valid]).max()), rel=1e-9)
    assert merge_clusters(before, 0.0) == 299  # the duplicate
    assert merge_clusters(before, 1e-6) == 298  # plus the near pair
    assert merges(before, after, 1e-6) == 0
