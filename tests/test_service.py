"""The run summary's verdicts, searched inside the store, with known answers."""

from backend import service
from backend.store import Store


def _store_with(tmp_path, frames):
    store = Store(tmp_path / "t.db")
    store.create_run("r", "figure-eight", {}, total_steps=0)
    for step, metrics in frames:
        store.put_frame("r", step, 0, metrics, {"coords": {}})
    return store


def _std(pb1, eta_k=None, **extra):
    return {"signature_space": "standardised", "pb0": 1, "pb1": pb1, "pb2": None, "b0": 1, "b1": 0,
            "eta_k_emp": eta_k, "interval_from": None} | extra


def test_first_topology_change_and_phase_exit(tmp_path):
    frames = [(0, _std(2)), (2, _std(2, 0.5, interval_from=0)), (4, _std(2, 1.7, interval_from=2)),
              (6, _std(1, 3.0, interval_from=4)), (8, _std(2, 0.2, interval_from=6))]
    store = _store_with(tmp_path, frames)
    run = service.get_run(store, "r")
    # b1 (not part of the standardised signature) stays 0; pb1 first differs at step 6; pb2 null throughout
    assert run["first_topology_change"] == 6
    assert run["phase_exit"] == {"step": 4, "from_step": 2, "eta_k_emp": 1.7}


def test_no_verdict_when_nothing_changed(tmp_path):
    store = _store_with(tmp_path, [(0, _std(2)), (2, _std(2, 0.99)), (4, _std(2, 1.0))])
    run = service.get_run(store, "r")
    assert run["first_topology_change"] is None and run["phase_exit"] is None  # 1.0 is not > 1


def test_a_metric_appearing_or_vanishing_counts_as_a_change(tmp_path):
    raw = {"signature_space": "raw", "b0": 1, "b1": 1, "b2": None}
    store = _store_with(tmp_path, [(0, raw), (3, raw | {"b2": 0}), (5, raw)])
    assert service.get_run(store, "r")["first_topology_change"] == 3


def test_without_step_0_there_is_no_reference(tmp_path):
    store = _store_with(tmp_path, [(2, _std(2)), (4, _std(1))])
    assert service.get_run(store, "r")["first_topology_change"] is None
