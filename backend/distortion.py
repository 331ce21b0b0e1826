"""How a training interval deforms the neuron cloud: distance ratios, swap ratios, merges, tears.

Pure numerics, no I/O. The theory (SCIENCE.md): while eta*K < 1 a step is bi-Lipschitz,
(1 - eta K)|x_i - x_j| <= |x_i' - x_j'| <= (1 + eta K)|x_i - x_j|, so no neurons merge and no
neighbourhood tears; the measurements here check that pair by pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist
from sklearn.neighbors import NearestNeighbors

from backend.topology import diameter

# Every pair for up to 2048 neurons (2048 * 2047 / 2 = 2,096,128 pairs).
DEFAULT_MAX_PAIRS = 2_100_000
# Merge tolerance relative to the typical neighbour spacing: a fraction of the diameter would count
# hundreds of "merged" pairs in any randomly sampled 1024-point curve at step 0.
MERGE_TOL_FRACTION = 1e-2
_CHUNK = 1 << 15  # sampled pairs per block: keeps the gathered temporaries in cache
# Wider neurons: squared distances from BLAS Gram products, ~10x faster than per-pair loops
# (1024 x 794: ~0.1 s instead of ~0.5-0.7 s). The Gram form loses precision for close pairs
# (error ~1e-13 x the squared radius), so pairs below this fraction of it are redone exactly.
_GRAM_MIN_DIM = 32
_GRAM_EXACT_BELOW = 1e-4
_GRAM_ROWS = 1024  # row block for Gram products in merge_clusters (bounded memory)
_TIE_RTOL = 1e-9  # k-NN ties: rounding must not turn a rigid motion into a "tear"


@dataclass(frozen=True)
class Distortion:
    """Distance-ratio statistics between two snapshots `steps` optimiser steps apart.

    ratio_min/ratio_max: extremes of r_ij = |x_i' - x_j'| / |x_i - x_j| over the interval;
    *_per_step: their steps-th roots (per-step bounds compound over the interval).
    swap_max: max of s_ij = |dx_i - dx_j| / |x_i - x_j|.
    k_emp: per-step Lipschitz lower bound ((1 + swap_max)^(1/steps) - 1) / lr;
    eta_star_emp = 1 / k_emp (inf when k_emp == 0).
    Pairs at distance 0 before (exact duplicates, which can never split) are excluded; with no
    pair left every statistic is NaN. n_pairs: pairs used; all_pairs: whether that was all.
    """

    ratio_min: float
    ratio_max: float
    ratio_min_per_step: float
    ratio_max_per_step: float
    swap_max: float
    k_emp: float
    eta_star_emp: float
    n_pairs: int
    all_pairs: bool
    steps: int


def _cloud(points: np.ndarray) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must have shape (N, D), got {x.shape}")
    return x


@lru_cache(maxsize=4)  # the same (n, cap, seed) serves every frame of a run; arrays are made read-only
def pair_indices(
    n: int, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Pairs (i, j), i < j: all of them when n(n-1)/2 <= max_pairs, else exactly max_pairs
    distinct ones, reproducible for a seed.

    The subset is a stratified sample of the row-major pair order (one uniform draw in each of
    max_pairs near-equal runs): pairs are equally likely up to the rounding of run lengths, rows
    are covered evenly, and it comes sorted (cache-friendly gathers) in ~50 ms for 2.1M of 8.4M
    pairs; a sample without replacement via Generator.choice takes ~300 ms.
    """
    if n < 0 or max_pairs < 1:
        raise ValueError("n must be >= 0 and max_pairs >= 1")
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = np.triu_indices(n, 1)
        return _frozen(i), _frozen(j), True
    edges = (np.arange(max_pairs + 1, dtype=np.int64) * total) // max_pairs
    widths = np.diff(edges)  # >= 1 because total > max_pairs
    u = np.random.default_rng(seed).random(max_pairs)
    linear = edges[:-1] + np.minimum((u * widths).astype(np.int64), widths - 1)
    rows = np.arange(n, dtype=np.int64)
    row_start = rows * n - rows * (rows + 1) // 2  # linear index of pair (row, row + 1)
    counts = np.diff(np.searchsorted(linear, np.append(row_start, total)))
    i = np.repeat(rows, counts)
    j = linear - row_start[i] + i + 1
    return _frozen(i), _frozen(j), False



def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array

def _gram_sq(x: np.ndarray, rows: slice = slice(None)) -> tuple[np.ndarray, float]:
    """Squared distances from x[rows] to all of x by one BLAS product, and the cloud's squared
    radius about its mean, which bounds their rounding error."""
    c = x - x.mean(axis=0)  # centring keeps the cancellation small
    sq = np.einsum("ij,ij->i", c, c)
    d2 = c[rows] @ c.T
    d2 *= -2.0
    d2 += sq[rows, None]
    d2 += sq[None, :]
    return np.maximum(d2, 0.0, out=d2), float(sq.max(initial=0.0))


def _exact_sq(x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    diff = x[i] - x[j]
    return np.einsum("ij,ij->i", diff, diff)


def _all_pairs_sq(*clouds: np.ndarray) -> list[np.ndarray]:
    """Squared distances of every pair (pdist order) in each of several same-shape clouds."""
    if clouds[0].shape[1] <= _GRAM_MIN_DIM:
        return [pdist(z, "sqeuclidean") for z in clouds]
    i, j = np.triu_indices(len(clouds[0]), 1)
    grams = [_gram_sq(z) for z in clouds]
    out = [d2[i, j] for d2, _ in grams]
    # The extreme ratios come from the closest pairs, exactly where the Gram form cancels.
    close = np.zeros(len(i), dtype=bool)
    for sq, (_, radius_sq) in zip(out, grams):
        close |= sq < _GRAM_EXACT_BELOW * radius_sq
    ci, cj = i[close], j[close]
    for sq, z in zip(out, clouds):
        sq[close] = _exact_sq(z, ci, cj)
    return out


def _ratio_extremes(
    before_sq: np.ndarray, after_sq: np.ndarray, move_sq: np.ndarray
) -> tuple[int, float, float, float]:
    """(pairs used, min and max of after/before, max of move/before), all squared, over pairs
    with a non-zero before-distance. Divides in place (fresh 4 MB arrays cost page faults)."""
    valid = before_sq > 0
    if not valid.all():
        before_sq, after_sq, move_sq = before_sq[valid], after_sq[valid], move_sq[valid]
    if len(before_sq) == 0:
        return 0, np.inf, -np.inf, -np.inf
    ratio = np.divide(after_sq, before_sq, out=after_sq)
    swap = np.divide(move_sq, before_sq, out=move_sq)
    return len(ratio), float(ratio.min()), float(ratio.max()), float(swap.max())


def distortion(
    before: np.ndarray,
    after: np.ndarray,
    lr: float,
    steps: int,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    seed: int = 0,
) -> Distortion:
    """Distance and swap ratios between two snapshots (N, D) of the same neurons.

    float64 throughout; close pairs always from exact differences. Every pair of 1024 x 2 takes
    ~5 ms, 1024 x 794 ~0.1 s; sampled pairs cost ~n_pairs x D. Raises ValueError for mismatched
    or non-finite snapshots (a diverged step), steps < 1 or lr <= 0.
    """
    x0, x1 = _cloud(before), _cloud(after)
    if x0.shape != x1.shape:
        raise ValueError(f"snapshots differ in shape: {x0.shape} vs {x1.shape}")
    if not (np.isfinite(x0).all() and np.isfinite(x1).all()):
        raise ValueError("snapshots contain NaN or inf")
    if steps < 1 or not lr > 0:
        raise ValueError("steps must be >= 1 and lr > 0")
    move = x1 - x0
    n = len(x0)
    all_pairs = n * (n - 1) // 2 <= max_pairs
    if all_pairs:
        stats = [_ratio_extremes(*_all_pairs_sq(x0, x1, move))]
    else:
        i, j, _ = pair_indices(n, max_pairs, seed)
        stacked = np.hstack((x0, x1, move))
        bounds = np.arange(3) * x0.shape[1]  # where each snapshot starts in a stacked row
        stats = []
        for start in range(0, len(i), _CHUNK):
            diff = np.take(stacked, i[start : start + _CHUNK], axis=0)
            diff -= np.take(stacked, j[start : start + _CHUNK], axis=0)
            diff *= diff
            sq = np.add.reduceat(diff, bounds, axis=1)
            stats.append(_ratio_extremes(sq[:, 0], sq[:, 1], sq[:, 2]))
    n_pairs = sum(s[0] for s in stats)
    if n_pairs == 0:
        nan = float("nan")
        return Distortion(nan, nan, nan, nan, nan, nan, nan, 0, all_pairs, steps)
    ratio_min = float(np.sqrt(min(s[1] for s in stats)))
    ratio_max = float(np.sqrt(max(s[2] for s in stats)))
    swap_max = float(np.sqrt(max(s[3] for s in stats)))
    k_emp = ((1.0 + swap_max) ** (1.0 / steps) - 1.0) / lr
    return Distortion(
        ratio_min=ratio_min,
        ratio_max=ratio_max,
        ratio_min_per_step=ratio_min ** (1.0 / steps),
        ratio_max_per_step=ratio_max ** (1.0 / steps),
        swap_max=swap_max,
        k_emp=k_emp,
        eta_star_emp=1.0 / k_emp if k_emp > 0 else float("inf"),
        n_pairs=n_pairs,
        all_pairs=all_pairs,
        steps=steps,
    )


def merge_clusters(points: np.ndarray, tol: float) -> int:
    """Number of single-linkage clusters when points within distance tol (inclusive) are joined;
    tol = 0 joins exact duplicates only."""
    x = _cloud(points)
    if len(x) == 0:
        return 0
    i, j = _pairs_within(x, tol)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(x), len(x)))
    return int(connected_components(graph, directed=False)[0])


def _pairs_within(x: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j with |x_i - x_j| <= tol."""
    if x.shape[1] <= _GRAM_MIN_DIM:  # a k-d tree prunes well in low dimension only
        pairs = cKDTree(x).query_pairs(tol, output_type="ndarray")
        return pairs[:, 0], pairs[:, 1]
    found_i, found_j = [], []
    for start in range(0, len(x), _GRAM_ROWS):
        d2, radius_sq = _gram_sq(x, slice(start, start + _GRAM_ROWS))
        # Generous Gram candidates (margin >> rounding), then the exact test.
        bi, j = np.nonzero(d2 <= tol * tol + _GRAM_EXACT_BELOW * radius_sq)
        i = bi + start
        i, j = i[i < j], j[i < j]
        keep = _exact_sq(x, i, j) <= tol * tol
        found_i.append(i[keep])
        found_j.append(j[keep])
    return np.concatenate(found_i), np.concatenate(found_j)


def merges(before: np.ndarray, after: np.ndarray, tol: float) -> int:
    """How many clusters disappeared from before to after (0 if clusters only split)."""
    return max(0, merge_clusters(before, tol) - merge_clusters(after, tol))


def duplicate_count(points: np.ndarray) -> int:
    """N minus the number of distinct rows."""
    x = _cloud(points)
    return len(x) - len(np.unique(x, axis=0))


def default_merge_tol(points: np.ndarray) -> float:
    """Merge tolerance relative to the cloud's scale: MERGE_TOL_FRACTION x the median nearest-neighbour distance
    among distinct points (0 when there are fewer than two)."""
    distinct = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(distinct) < 2:
        return 0.0
    nearest, _ = cKDTree(distinct).query(distinct, k=2)
    return MERGE_TOL_FRACTION * float(np.median(nearest[:, 1]))


def knn_preservation(reference: np.ndarray, current: np.ndarray, k: int = 10) -> np.ndarray:
    """Per neuron, the fraction of its k nearest neighbours in `reference` (e.g. step 0) that are
    still among its k nearest in `current`; 1.0 everywhere for a rigid motion.

    "Still among" is tie-inclusive (within the k-th nearest distance now), so evenly spaced
    clouds do not lose neighbours to rounding. k is clipped to N - 1; N <= 1 gives ones.
    """
    ref, cur = _cloud(reference), _cloud(current)
    if ref.shape != cur.shape:
        raise ValueError(f"clouds differ in shape: {ref.shape} vs {cur.shape}")
    n = len(ref)
    if n <= 1:
        return np.ones(n)
    k = min(k, n - 1)
    # kneighbors() without a query excludes each point itself (even among duplicates).
    neighbours = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(return_distance=False)
    kth_now = NearestNeighbors(n_neighbors=k).fit(cur).kneighbors()[0][:, -1]
    now = np.linalg.norm(cur[neighbours] - cur[:, None, :], axis=2)
    return np.mean(now <= kth_now[:, None] * (1.0 + _TIE_RTOL), axis=1)
