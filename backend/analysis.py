"""One snapshot in, one analysed frame out: persistence, drawing coordinates and the paper's measures.

Pure: arrays in, dictionaries of JSON-ready values out. The analyser process does the I/O around it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend import distortion, embedding, topology

PAPER_SCALE = 0.25  # Rips scale as a fraction of the diameter, as in the paper
PERSISTENT_FRACTION = 0.1  # bars longer than this fraction of the diameter count as features
KNN_K = 10


@dataclass(frozen=True)
class Reference:
    """What every frame of a run is compared with: the step-0 cloud."""

    neurons: np.ndarray
    basis: embedding.PcaBasis
    hue: np.ndarray  # (N,) in [0, 1): each neuron's colour, fixed by its step-0 position
    merge_tol: float  # closer than this counts as merged: 1% of the step-0 neighbour spacing

    @staticmethod
    def from_step0(neurons: np.ndarray) -> Reference:
        points = np.asarray(neurons, dtype=np.float64)
        basis = embedding.pca_basis(points, n_components=min(3, points.shape[1]))
        standardised = topology.standardise(points)
        plane = embedding.project(standardised, embedding.pca_basis(standardised, 2))
        if plane.shape[1] < 2:
            plane = np.column_stack([plane[:, 0], np.zeros(len(points))])
        hue = (np.arctan2(plane[:, 1], plane[:, 0]) / (2 * math.pi)) % 1.0
        return Reference(neurons=points, basis=basis, hue=hue, merge_tol=distortion.default_merge_tol(points))


@dataclass(frozen=True)
class Frame:
    metrics: dict[str, Any]
    payload: dict[str, Any]


def _diagram_json(diagrams: dict[int, np.ndarray]) -> dict[str, list[list[float | None]]]:
    return {
        str(dim): [[round(float(b), 6), None if math.isinf(d) else round(float(d), 6)] for b, d in bars]
        for dim, bars in diagrams.items()
    }


def diagrams_from_json(diagrams: dict[str, list[list[float | None]]]) -> dict[int, np.ndarray]:
    return {
        int(dim): np.array([[b, math.inf if d is None else d] for b, d in bars], dtype=np.float64).reshape(-1, 2)
        for dim, bars in diagrams.items()
    }


def _rounded(points: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(points, dtype=np.float64), 5).tolist()


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def topology_signature_space(neuron_dim: int) -> str:
    # Low-dimensional clouds (the figure eight is 0.2 wide, 2 tall) are read in standardised coordinates,
    # where their loops survive; high-dimensional ones in raw coordinates, as the paper does.
    return "standardised" if neuron_dim <= 3 else "raw"


def analyse(
    neurons: np.ndarray,
    step: int,
    lr: float,
    snapshot_metrics: dict[str, Any],
    reference: Reference,
    previous: tuple[int, np.ndarray] | None,
    previous_umap: np.ndarray | None,
    seed: int = 0,
) -> Frame:
    """Analyse one snapshot; ``previous`` is the (step, neurons) of the snapshot before it, if known."""
    started = time.perf_counter()
    points = np.asarray(neurons, dtype=np.float64)
    n, dim = points.shape
    max_dim = 1 if dim <= 2 else 2

    # 300 landmarks keep MNIST-size clouds (1024 x 794) near a second per frame; the cover radius says the cost.
    pers = topology.persistence(points, max_dim=max_dim, max_landmarks=600 if dim <= 3 else 300)
    diam = topology.diameter(points)
    coords: dict[str, list[list[float]]]
    diagrams_std = None
    if dim <= 3:
        coords = {"raw": _rounded(points)}
        standardised = topology.standardise(points)
        pers_std = topology.persistence(standardised, max_dim=max_dim)
        diagrams_std = _diagram_json(pers_std.diagrams)
    else:
        umap_coords = embedding.umap_embed(points, init=previous_umap, seed=seed)
        coords = {"pca": _rounded(embedding.project(points, reference.basis)), "umap": _rounded(umap_coords)}

    signature_pers = pers_std if dim <= 3 else pers
    signature_diam = topology.diameter(standardised) if dim <= 3 else diam
    betti = topology.betti_at_scale(pers, PAPER_SCALE * diam)
    persistent = topology.persistent_counts(signature_pers, PERSISTENT_FRACTION * signature_diam)

    metrics: dict[str, Any] = dict(snapshot_metrics)
    sharpness = snapshot_metrics.get("sharpness")
    metrics["eta_sharpness"] = lr * sharpness if sharpness is not None else None
    for k in range(3):
        metrics[f"b{k}"] = betti[k] if k < len(betti) else None
        metrics[f"pb{k}"] = persistent[k] if k < len(persistent) else None
    metrics["signature_space"] = topology_signature_space(dim)
    metrics["diameter"] = diam

    merge_tol = reference.merge_tol
    metrics["merged_clusters"] = n - distortion.merge_clusters(points, merge_tol)
    metrics["duplicates"] = distortion.duplicate_count(points)
    knn = distortion.knn_preservation(reference.neurons, points, k=KNN_K)
    metrics["knn_mean"] = float(knn.mean())

    to_start = distortion.distortion(reference.neurons, points, lr=lr, steps=max(step, 1), seed=seed)
    metrics["ratio0_min"], metrics["ratio0_max"] = _finite(to_start.ratio_min), _finite(to_start.ratio_max)
    if previous is not None:
        prev_step, prev_points = previous
        d = distortion.distortion(np.asarray(prev_points, dtype=np.float64), points, lr=lr, steps=step - prev_step,
                                  seed=seed)
        metrics |= {
            "interval_from": prev_step,
            "ratio_min": _finite(d.ratio_min),
            "ratio_max": _finite(d.ratio_max),
            "ratio_min_per_step": _finite(d.ratio_min_per_step),
            "ratio_max_per_step": _finite(d.ratio_max_per_step),
            "swap_max": _finite(d.swap_max),
            "k_emp": _finite(d.k_emp),
            "eta_k_emp": _finite(lr * d.k_emp),
            "eta_star_emp": _finite(d.eta_star_emp),
            "pairs": d.n_pairs,
            "all_pairs": d.all_pairs,
            "merges": distortion.merges(np.asarray(prev_points, dtype=np.float64), points, merge_tol),
        }
    metrics["analysis_ms"] = round(1000 * (time.perf_counter() - started), 2)

    payload = {
        "coords": coords,
        "diagrams": _diagram_json(pers.diagrams),
        "diagrams_standardised": diagrams_std,
        "persistence": {
            "method": pers.method,
            "n_points_used": pers.n_points_used,
            "cover_radius": pers.cover_radius,
            "diameter": diam,
            "diameter_standardised": signature_diam if dim <= 3 else None,
            "max_dim": pers.max_dim,
        },
        "neuron_hue": np.round(reference.hue, 4).tolist(),
        "knn_preservation": np.round(knn, 4).tolist(),
    }
    return Frame(metrics=metrics, payload=payload)


def topology_change(previous_payload: dict[str, Any], payload: dict[str, Any]) -> float | None:
    """Bottleneck distance between two frames' diagrams (max over dimensions); None when infinite."""
    a = topology.Persistence(diagrams=diagrams_from_json(previous_payload["diagrams"]), method="", n_points_used=0,
                             cover_radius=0.0, max_dim=0)
    b = topology.Persistence(diagrams=diagrams_from_json(payload["diagrams"]), method="", n_points_used=0,
                             cover_radius=0.0, max_dim=0)
    return _finite(topology.diagram_distance(a, b))
