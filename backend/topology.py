"""Persistent homology of neuron clouds: diagrams, Betti numbers, bottleneck distances.

Pure numerics, no I/O. Every filtration value is a distance between points (Rips edge-length
units), whichever complex computed it, so scales such as "0.25 x diameter" mean the same thing
for every method.
"""

from __future__ import annotations

from dataclasses import dataclass

import gudhi
import numpy as np
import ripser
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist, squareform

# Up to this ambient dimension the alpha complex is exact and fast (CGAL Delaunay).
ALPHA_MAX_AMBIENT_DIM = 3
# Rips H_{>=2} explodes with scale and point count, so in the Rips path it runs on at most this
# many landmarks and only up to HIGH_DIM_SCALE_FRACTION x their diameter (just past the paper's
# 0.25). Measured: without the cut-off H2 on 150 landmarks takes 0.5-1.2 s; with it, 300
# landmarks take 1-50 ms on spheres/balls (~270 ms on a torus). Fewer landmarks are too sparse:
# the H2 bar of 1024 points on a 2-sphere is born after 0.25 x diameter with 150 or 256 of them.
HIGH_DIM_LANDMARKS = 300
HIGH_DIM_SCALE_FRACTION = 0.35
# Bars shorter than this fraction of their death are rounding noise (cospherical points make
# alpha bars [2 - 1e-16, 2]); real zero-length bars come from duplicate or tied points.
_ZERO_LENGTH_RTOL = 1e-10
# High-D diameters use Gram blocks of this many rows (BLAS speed, bounded memory).
_DIAMETER_BLOCK = 1024

_EMPTY = np.empty((0, 2), dtype=np.float64)


@dataclass(frozen=True, eq=False)  # eq=False: field-wise == on arrays is ambiguous
class Persistence:
    """Persistence diagrams of one cloud.

    diagrams: dim -> (k, 2) float64 [birth, death], read-only, zero-length bars dropped, sorted by
        decreasing persistence (infinite bars first). H0 has exactly one infinite bar when the
        cloud is non-empty; exact duplicate points only ever add zero-length H0 bars, so they
        leave no trace.
    method: "alpha" (D <= 3, exact), "rips" (every distinct point used) or "rips-landmarks"
        (greedy-permutation landmarks).
    n_points_used: distinct points in the smallest complex used (H2 may use fewer landmarks
        than H0/H1).
    cover_radius: largest distance from a point to its nearest landmark over the complexes used;
        it bounds the error of the diagrams (0.0 when every point is used).
    max_dim: highest homology dimension computed.
    max_scale: dims >= 2 of the Rips path are computed only up to this scale; bars alive there
        are closed at it, so their length is a lower bound. np.inf when nothing was truncated.
    """

    diagrams: dict[int, np.ndarray]
    method: str
    n_points_used: int
    cover_radius: float
    max_dim: int
    max_scale: float = np.inf


def _as_cloud(points: np.ndarray) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"points must have shape (N, D) with D >= 1, got {x.shape}")
    return x


def _max_sq_distance(x: np.ndarray) -> float:
    """Largest squared pairwise distance (Gram form in row blocks: bounded memory, BLAS speed)."""
    x = x - x.mean(axis=0)  # centring keeps the Gram-form cancellation small
    sq = np.einsum("ij,ij->i", x, x)
    best = 0.0
    for start in range(0, len(x), _DIAMETER_BLOCK):
        block = x[start : start + _DIAMETER_BLOCK]
        d2 = sq[start : start + _DIAMETER_BLOCK, None] + sq[None, :] - 2.0 * (block @ x.T)
        best = max(best, float(d2.max()))
    return best


def diameter(points: np.ndarray) -> float:
    """Largest pairwise distance; 0.0 for fewer than two points."""
    x = _as_cloud(points)
    if len(x) < 2:
        return 0.0
    if x.shape[1] == 1:
        return float(x.max() - x.min())
    if x.shape[1] <= ALPHA_MAX_AMBIENT_DIM and len(x) > 4 * ALPHA_MAX_AMBIENT_DIM:
        try:
            x = x[ConvexHull(x).vertices]  # the farthest pair lies on the hull
        except QhullError:  # flat input (e.g. collinear in 2-D): fall back to all pairs
            pass
    if x.shape[1] <= ALPHA_MAX_AMBIENT_DIM:
        return float(pdist(x).max())  # few hull vertices; exact differences
    return float(np.sqrt(max(_max_sq_distance(x), 0.0)))


def standardise(points: np.ndarray) -> np.ndarray:
    """Centre each coordinate and divide it by its standard deviation; constant columns become 0.

    Why: the figure eight is 0.2 wide and 2 tall, so at 0.25 x diameter its loops are filled in.
    """
    x = _as_cloud(points)
    centred = x - x.mean(axis=0)
    std = centred.std(axis=0)
    # A constant column can leave rounding noise after centring; test constancy exactly instead.
    constant = np.ptp(x, axis=0) == 0
    centred[:, constant] = 0.0
    std[constant] = 1.0
    return centred / std


def _clean(diagram: np.ndarray) -> np.ndarray:
    """Drop zero-length bars, sort by decreasing persistence (ties by birth), freeze."""
    d = np.asarray(diagram, dtype=np.float64).reshape(-1, 2)
    length = d[:, 1] - d[:, 0]
    d = d[np.isposinf(length) | (length > _ZERO_LENGTH_RTOL * np.abs(d[:, 1]))]
    order = np.lexsort((d[:, 0], -(d[:, 1] - d[:, 0])))
    out = np.ascontiguousarray(d[order])
    out.setflags(write=False)
    return out


def _alpha_persistence(x: np.ndarray, max_dim: int) -> Persistence:
    tree = gudhi.AlphaComplex(points=x).create_simplex_tree()  # dedups identical points itself
    tree.prune_above_dimension(max_dim + 1)  # higher simplices only kill classes above max_dim
    # persistence_dim_max: a lone point is a 0-dim complex, whose top dimension gudhi skips.
    tree.compute_persistence(homology_coeff_field=2, persistence_dim_max=True)
    diagrams = {}
    for k in range(max_dim + 1):
        squared_radii = tree.persistence_intervals_in_dimension(k)
        # alpha^2 -> 2 alpha: an edge enters at (|e|/2)^2 when its diametral ball is empty, and
        # MST edges always are (Gabriel edges), so H0 equals Rips H0 exactly.
        diagrams[k] = _clean(2.0 * np.sqrt(squared_radii))
    return Persistence(diagrams, "alpha", int(tree.num_vertices()), 0.0, max_dim)


def _greedy_permutation(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """First m points of the farthest-point order from point 0, and cover[k] = cover radius of
    the first k + 1 of them. Selection uses Gram-form distances: one BLAS mat-vec per landmark."""
    centred = x - x.mean(axis=0)
    sq = np.einsum("ij,ij->i", centred, centred)
    order = np.empty(m, dtype=np.intp)
    cover_sq = np.empty(m)
    nearest_sq = np.full(len(x), np.inf)
    nxt = 0
    for k in range(m):
        order[k] = nxt
        np.minimum(nearest_sq, sq + sq[nxt] - 2.0 * (centred @ centred[nxt]), out=nearest_sq)
        nearest_sq[nxt] = -np.inf  # never re-picked, whatever the Gram rounding elsewhere
        nxt = int(np.argmax(nearest_sq))
        cover_sq[k] = nearest_sq[nxt]
    return order, np.sqrt(np.maximum(cover_sq, 0.0))


def _rips_persistence(x: np.ndarray, max_dim: int, max_landmarks: int) -> Persistence:
    distinct = np.unique(x, axis=0)  # duplicates only add zero-length H0 bars
    n = len(distinct)
    n_low = min(n, max_landmarks)  # points for H0/H1
    n_high = min(n_low, HIGH_DIM_LANDMARKS) if max_dim >= 2 else n_low  # points for H_{>=2}
    cover = 0.0
    if n_high < n:
        # Greedy prefixes are nested: the first n_high landmarks are a prefix of the n_low ones.
        order, covers = _greedy_permutation(distinct, n_low)
        distinct = distinct[order]
        cover = float(covers[n_high - 1])
    dist = squareform(pdist(distinct[:n_low]))  # exact differences, float64
    low = ripser.ripser(dist, maxdim=min(max_dim, 1), distance_matrix=True)["dgms"]
    diagrams = {k: _clean(low[k]) for k in range(min(max_dim, 1) + 1)}
    max_scale = np.inf
    if max_dim >= 2:
        sub = dist[:n_high, :n_high]
        max_scale = HIGH_DIM_SCALE_FRACTION * float(sub.max())
        high = ripser.ripser(sub, maxdim=max_dim, distance_matrix=True, thresh=max_scale)["dgms"]
        for k in range(2, max_dim + 1):
            diagrams[k] = _clean(np.minimum(high[k], max_scale))  # close bars at the cut-off
    method = "rips" if n_high == n else "rips-landmarks"
    return Persistence(diagrams, method, n_high, cover, max_dim, max_scale)


def persistence(points: np.ndarray, max_dim: int = 1, max_landmarks: int = 600) -> Persistence:
    """Persistence diagrams H0..H_max_dim of a cloud (N, D), filtration values in distance units.

    D <= 3: exact alpha complex (~10 ms for 1024 points in 2-D). D > 3: Rips via ripser on every
    distinct point, or on max_landmarks greedy-permutation landmarks when there are more; dims >= 2
    use at most HIGH_DIM_LANDMARKS landmarks and stop at HIGH_DIM_SCALE_FRACTION x their diameter
    (see Persistence.max_scale). Raises ValueError for non-finite coordinates (a diverged run).
    """
    x = _as_cloud(points)
    if max_dim < 0 or max_landmarks < 1:
        raise ValueError("max_dim must be >= 0 and max_landmarks >= 1")
    if not np.isfinite(x).all():
        raise ValueError("points contain NaN or inf")
    if len(x) == 0:
        method = "alpha" if x.shape[1] <= ALPHA_MAX_AMBIENT_DIM else "rips"
        return Persistence({k: _EMPTY for k in range(max_dim + 1)}, method, 0, 0.0, max_dim)
    if x.shape[1] <= ALPHA_MAX_AMBIENT_DIM:
        return _alpha_persistence(x, max_dim)
    return _rips_persistence(x, max_dim, max_landmarks)


def betti_at_scale(p: Persistence, scale: float) -> list[int]:
    """b_k = number of bars with birth <= scale < death, for k = 0..max_dim."""
    return [
        int(np.count_nonzero((d[:, 0] <= scale) & (scale < d[:, 1])))
        for d in (p.diagrams[k] for k in range(p.max_dim + 1))
    ]


def persistent_counts(p: Persistence, min_length: float) -> list[int]:
    """Number of bars longer than min_length (infinite bars count), for k = 0..max_dim."""
    return [
        int(np.count_nonzero(d[:, 1] - d[:, 0] > min_length))
        for d in (p.diagrams[k] for k in range(p.max_dim + 1))
    ]


def _equal_birth_bottleneck(a: np.ndarray, b: np.ndarray, birth: float) -> float:
    """Exact bottleneck distance when every bar of both diagrams is born at `birth` (H0).

    Matching two such bars costs |death - death'|, sending one to the diagonal (death - birth)/2.
    Some optimal matching pairs the k longest bars of each diagram in sorted order and sends the
    rest to the diagonal (exchange argument), so the answer is a minimum over k: O(n log n)
    instead of a general geometric matching (gudhi takes 10-35 ms on 1000 bars).
    """
    n = max(len(a), len(b))
    la = np.zeros(n + 1)
    lb = np.zeros(n + 1)
    la[: len(a)] = np.sort(a[:, 1] - birth)[::-1]
    lb[: len(b)] = np.sort(b[:, 1] - birth)[::-1]
    # matched[k] = worst cost of pairing the k longest bars; unmatched[k] = longest leftover / 2.
    matched = np.concatenate(([0.0], np.maximum.accumulate(np.abs(la[:n] - lb[:n]))))
    unmatched = np.maximum(la, lb) / 2.0
    return float(np.min(np.maximum(matched, unmatched)))


def bottleneck(a: np.ndarray, b: np.ndarray) -> float:
    """Bottleneck distance between two diagrams of one dimension ((k, 2) arrays).

    Infinite bars can only match infinite bars: different counts give inf, otherwise they are
    matched by sorted birth. Finite parts whose bars all share one birth (H0) use an exact
    closed form; other finite parts use gudhi.bottleneck_distance with its default e, which is
    exact up to the last few bits of the mantissa and much faster than e=0.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inf_a = np.isinf(a[:, 1])
    inf_b = np.isinf(b[:, 1])
    if inf_a.sum() != inf_b.sum():
        return float("inf")
    infinite = float(np.max(np.abs(np.sort(a[inf_a, 0]) - np.sort(b[inf_b, 0])), initial=0.0))
    fa, fb = a[~inf_a], b[~inf_b]
    if len(fa) == 0 and len(fb) == 0:
        return infinite
    births = np.concatenate((fa[:, 0], fb[:, 0]))
    if np.all(births == births[0]):
        finite = _equal_birth_bottleneck(fa, fb, float(births[0]))
    else:
        finite = float(gudhi.bottleneck_distance(fa, fb))
    return max(infinite, finite)


def diagram_distance(pa: Persistence, pb: Persistence) -> float:
    """Largest bottleneck distance over every dimension either side holds (a dimension missing
    on one side counts as empty there)."""
    dims = set(pa.diagrams) | set(pb.diagrams)
    return max(
        (bottleneck(pa.diagrams.get(k, _EMPTY), pb.diagrams.get(k, _EMPTY)) for k in dims),
        default=0.0,
    )
