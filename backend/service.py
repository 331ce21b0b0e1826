"""The API's logic as plain functions over the store and Redis; routes in ``backend.api`` stay thin."""

from __future__ import annotations

import uuid
from typing import Any

import redis

from backend.analysis import PAPER_SCALE, PERSISTENT_FRACTION, diagrams_from_json
from backend.store import TERMINAL_STATUSES, Store
from backend import distortion, topology
from topowatch.wire import REQUESTS, RunRequest, stop_key
from worker.presets import FIELDS, PRESETS, RunConfig


# SQLite's largest INTEGER: no step beyond it can be stored, and a query with a larger one overflows.
MAX_STEP = 2**63 - 1


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    """A request that does not fit the resource's state (e.g. stopping a run that already ended)."""


def presets() -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "title": p.title,
            "source": p.source,
            "description": p.description,
            "defaults": {"preset": p.name} | p.defaults,
            "pair": [{"label": r.label, "lr": r.lr, "epochs": r.epochs} for r in p.pair],
            "neuron_dim": p.neuron_dim(),
            "requires_data_path": p.data == "mnist",
        }
        for p in PRESETS.values()
    ]


def fields() -> list[dict[str, Any]]:
    return FIELDS


def submit_run(store: Store, client: redis.Redis, config: RunConfig) -> str:
    run_id = uuid.uuid4().hex[:12]
    store.create_run(run_id, config.preset, config.model_dump(), total_steps=0)
    client.xadd(REQUESTS, RunRequest(run_id, config.model_dump()).encode())
    return run_id


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}")
    run["first_topology_change"] = first_topology_change(store, run_id)
    run["phase_exit"] = phase_exit(store, run_id)
    return run


def require_run(store: Store, run_id: str) -> None:
    if not store.run_exists(run_id):
        raise NotFound(f"no run with id {run_id!r}")


def list_runs(store: Store) -> list[dict[str, Any]]:
    return store.list_runs()


def stop_run(store: Store, client: redis.Redis, run_id: str) -> dict[str, Any]:
    run = get_run(store, run_id)
    if run["status"] in TERMINAL_STATUSES and run["status"] != "stopped":
        raise Conflict(f"run {run_id!r} already ended ({run['status']}); nothing to stop")
    # The worker polls this key between steps; a queued run is marked at once and skipped when taken.
    # Stopping twice is harmless: the answer is the run as it stands.
    client.set(stop_key(run_id), "1", ex=7 * 24 * 3600)
    if run["status"] == "queued":
        store.set_status(run_id, "stopped", error=None)
    return get_run(store, run_id)


def first_topology_change(store: Store, run_id: str) -> int | None:
    """First analysed step whose topology signature differs from step 0's.

    The signature is the Betti numbers at the paper's scale (0.25 x diameter) for high-dimensional clouds,
    and the persistent counts in standardised coordinates for clouds in R^2 and R^3 (see analysis.py).
    Searched inside the store: a long run's whole index is not read for every poll of the run."""
    first = store.frame_index(run_id, 0, 0)
    if not first:
        return None
    metrics = first[0]["metrics"]
    prefix = "pb" if metrics.get("signature_space") == "standardised" else "b"
    return store.first_step_differing(run_id, {f"{prefix}{k}": metrics.get(f"{prefix}{k}") for k in range(3)})


def phase_exit(store: Store, run_id: str) -> dict[str, Any] | None:
    """First snapshot interval where lr * K_emp > 1: the run left the topology-preserving phase.

    K_emp is a lower bound on the update's Lipschitz constant K, so lr * K_emp > 1 certifies lr > eta* = 1/K.
    """
    entry = store.first_frame_above(run_id, "eta_k_emp", 1.0)
    if entry is None:
        return None
    metrics = entry["metrics"]
    return {"step": int(entry["step"]), "from_step": metrics.get("interval_from"), "eta_k_emp": metrics["eta_k_emp"]}


def frame_index(store: Store, run_id: str, start: int = 0, end: int = MAX_STEP) -> list[dict[str, Any]]:
    require_run(store, run_id)
    return store.frame_index(run_id, start, end)


def frame(store: Store, run_id: str, step: int) -> dict[str, Any]:
    found = store.frame(run_id, step)
    if found is None:
        require_run(store, run_id)
        raise NotFound(f"run {run_id!r} has no analysed frame at step {step}")
    return found


def frame_range(store: Store, run_id: str, start: int, end: int, limit: int) -> list[dict[str, Any]]:
    require_run(store, run_id)
    return store.frames(run_id, start, end, limit)


def neighbourhood_curve(store: Store, run_id: str, k: int, step: int | None) -> dict[str, Any]:
    """Neighbourhood preservation against step 0 for another k, recomputed from the stored raw snapshots."""
    require_run(store, run_id)
    reference = store.get_snapshot(run_id, 0)
    if reference is None:
        raise NotFound(f"run {run_id!r} has no step-0 snapshot yet")
    if step is not None:
        snapshot = store.get_snapshot(run_id, step)
        if snapshot is None:
            raise NotFound(f"run {run_id!r} has no snapshot at step {step}")
        per_neuron = distortion.knn_preservation(reference.neurons, snapshot.neurons, k=k)
        return {"k": k, "step": step, "mean": float(per_neuron.mean()), "per_neuron": per_neuron.round(4).tolist()}
    steps, means = [], []
    for snapshot in store.iter_snapshots(run_id):
        steps.append(snapshot.step)
        means.append(float(distortion.knn_preservation(reference.neurons, snapshot.neurons, k=k).mean()))
    return {"k": k, "steps": steps, "mean": means}


def betti_curve(store: Store, run_id: str, scale: float, standardised: bool, min_length: float) -> dict[str, Any]:
    """Betti numbers and persistent counts over time at a chosen scale, from the stored diagrams."""
    require_run(store, run_id)
    steps, betti, persistent = [], [], []
    for entry in store.iter_frames(run_id):
        use_std = standardised and entry.get("diagrams_standardised") is not None
        diagrams = diagrams_from_json(entry["diagrams_standardised"] if use_std else entry["diagrams"])
        diameter = entry["persistence"]["diameter_standardised" if use_std else "diameter"]
        pers = topology.Persistence(diagrams=diagrams, method="", n_points_used=0, cover_radius=0.0,
                                    max_dim=max(diagrams, default=0))
        steps.append(entry["step"])
        betti.append(topology.betti_at_scale(pers, scale * diameter))
        persistent.append(topology.persistent_counts(pers, min_length * diameter))
    space = "standardised coordinates" if standardised else "raw coordinates"
    return {
        "steps": steps,
        "betti": betti,
        "persistent": persistent,
        "scale_rule": f"Betti at {scale:g} x diameter, persistent bars longer than {min_length:g} x diameter, {space}",
        "defaults": {"scale": PAPER_SCALE, "min_length": PERSISTENT_FRACTION},
    }
