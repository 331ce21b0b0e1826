"""Low-dimensional views of neuron clouds: a fixed PCA basis and a temporally coherent UMAP.

Pure numerics, no I/O. UMAP is driven through umap-learn's building blocks (fuzzy_simplicial_set,
optimize_layout_euclidean) rather than the UMAP estimator, because the estimator rescales any
initial layout into a [0, 10] box per axis, which distorts the previous frame's layout and makes
consecutive frames jump.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numba
import numpy as np
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import ThreadpoolController
from umap.layouts import optimize_layout_euclidean
from umap.umap_ import find_ab_params, fuzzy_simplicial_set, make_epochs_per_sample

N_NEIGHBORS = 15
COLD_EPOCHS = 200  # from a PCA layout: needs to converge
WARM_EPOCHS = 10  # from the previous frame: only follow the change
WARM_LEARNING_RATE = 0.25  # smaller steps keep a warm layout close to where it started
# UMAP's SGD moves points by absolute layout units (clipped gradients x learning rate), so the
# RMS radius a layout is blown up to before optimising sets how far a frame can move. Measured
# with the warm settings above: an unchanged cloud jitters by 3-10% of the view's radius
# (median; the most for structureless clouds), and after a tear the embedding's 10-NN agreement
# with the data is at cold-start quality from the first frame. Radius 5 jitters ~2x more.
LAYOUT_RMS = 10.0
MIN_UMAP_POINTS = 4  # below this a k-NN graph says nothing: PCA coordinates instead
_A, _B = find_ab_params(1.0, 0.1)


@dataclass(frozen=True, eq=False)  # eq=False: field-wise == on arrays is ambiguous
class PcaBasis:
    """mean: (D,); components: (k, D) orthonormal rows, zero rows past the cloud's rank."""

    mean: np.ndarray
    components: np.ndarray


def pca_basis(reference: np.ndarray, n_components: int = 3) -> PcaBasis:
    """Principal axes of a reference cloud (N, D), e.g. step 0, so later projections are stable.

    Signs are fixed (largest-|.| entry of each component positive) so the same cloud always gives
    the same basis. Components past the cloud's rank are zero rows, keeping the output k wide.
    """
    x = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0 or n_components < 1:
        raise ValueError(f"need a non-empty (N, D) cloud and n_components >= 1, got {x.shape}")
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    # Directions with (numerically) zero variance are arbitrary: leave them as zero rows.
    rank = int(np.sum(singular > singular.max(initial=0.0) * max(x.shape) * np.finfo(float).eps))
    components = np.zeros((n_components, x.shape[1]))
    k = min(n_components, rank)
    top = vt[:k]
    signs = np.sign(top[np.arange(k), np.argmax(np.abs(top), axis=1)])
    components[:k] = top * signs[:, None]
    mean.setflags(write=False)
    components.setflags(write=False)
    return PcaBasis(mean, components)


def project(points: np.ndarray, basis: PcaBasis) -> np.ndarray:
    """Coordinates (N, k) of points in a PCA basis."""
    return (np.asarray(points, dtype=np.float64) - basis.mean) @ basis.components.T


def _unit_rms(y: np.ndarray) -> np.ndarray:
    """Centre and scale to unit RMS radius so the view keeps its size from frame to frame."""
    y = y - y.mean(axis=0)
    rms = float(np.sqrt(np.mean(np.sum(y * y, axis=1))))
    return y / rms if rms > 0 else y


@cache
def _thread_pools() -> ThreadpoolController:
    return ThreadpoolController()  # scans the loaded BLAS/OpenMP libraries once (~10 ms)


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Run BLAS, OpenMP (sklearn's k-NN) and numba-parallel (UMAP's fuzzy set) code on one
    thread: per-frame problems are small, and when the trainer shares the CPU their worker
    threads mostly spin (measured 256 x 74 with init: ~90 ms threaded vs ~11 ms single)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)  # numba's setting is per calling thread
    try:
        with _thread_pools().limit(limits=1):
            yield
    finally:
        numba.set_num_threads(previous)


def umap_embed(
    points: np.ndarray, init: np.ndarray | None, seed: int = 0, n_components: int = 2
) -> np.ndarray:
    """UMAP layout (N, n_components), centred with unit RMS radius; deterministic for a seed.

    With `init` (the previous frame's output for the same N neurons) the layout starts there
    and runs WARM_EPOCHS gentle epochs, so frames move smoothly instead of being re-laid out;
    without it, it starts from PCA and runs COLD_EPOCHS. Fewer than MIN_UMAP_POINTS points:
    the (zero-padded) PCA coordinates. Raises ValueError for non-finite points or a bad init.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("points must be a finite (N, D) array")
    n = len(x)
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        if init.shape != (n, n_components) or not np.isfinite(init).all():
            raise ValueError(f"init must be a finite ({n}, {n_components}) array")
    if n == 0:
        return np.zeros((0, n_components))
    if n < MIN_UMAP_POINTS:
        return _unit_rms(project(x, pca_basis(x, n_components)))

    with _single_threaded():
        return _umap(x, init, seed, n_components)


def _umap(x: np.ndarray, init: np.ndarray | None, seed: int, n_components: int) -> np.ndarray:
    n = len(x)
    rng = np.random.RandomState(seed)
    k = min(N_NEIGHBORS, n - 1) + 1  # +1: UMAP counts each point as its own first neighbour
    knn_dists, knn_indices = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    graph, _, _ = fuzzy_simplicial_set(
        x, k, rng, "euclidean", knn_indices=knn_indices, knn_dists=knn_dists
    )
    graph = graph.tocoo()
    graph.sum_duplicates()

    if init is None:
        start = project(x, pca_basis(x, n_components))
        epochs, learning_rate = COLD_EPOCHS, 1.0
    else:
        start, epochs, learning_rate = init, WARM_EPOCHS, WARM_LEARNING_RATE
    # Tiny jitter separates coincident starting points (merged neurons), which UMAP cannot move.
    layout = (LAYOUT_RMS * _unit_rms(start) + rng.normal(scale=1e-4, size=start.shape)).astype(
        np.float32
    )
    keep = graph.data >= graph.data.max() / COLD_EPOCHS  # UMAP's own pruning of weak edges
    head, tail, weights = graph.row[keep], graph.col[keep], graph.data[keep]
    rng_state = rng.randint(np.iinfo(np.int32).min, np.iinfo(np.int32).max, 3).astype(np.int64)
    layout = optimize_layout_euclidean(
        layout,
        layout,
        head,
        tail,
        epochs,
        n,
        make_epochs_per_sample(weights, epochs),
        _A,
        _B,
        rng_state,
        initial_alpha=learning_rate,
        parallel=False,  # the parallel kernel is not deterministic
        move_other=True,  # as UMAP's own fit: both ends of an edge move
    )
    return _unit_rms(layout.astype(np.float64))


def warm_up() -> None:
    """Pay numba's JIT compilation once per process with a tiny cold and warm fit."""
    cloud = np.random.default_rng(0).normal(size=(32, 3))
    umap_embed(cloud, umap_embed(cloud, None), seed=0)
