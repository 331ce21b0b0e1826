"""End to end through real HTTP: `topowatch up` (embedded Redis, worker, analyser, API) on free ports."""

import json
import math
import re
import threading

import numpy as np
import pytest
import requests

from tests.conftest import post_run, wait_for, wait_status

SHORT = {"preset": "figure-eight", "epochs": 2, "snapshot_every": 5, "sharpness_every": 20}


def frames_of(api_url: str, run_id: str) -> list[dict]:
    return requests.get(f"{api_url}/api/runs/{run_id}/frames", timeout=10).json()["frames"]


def test_health_presets_and_docs(live_stack):
    api = live_stack["api_url"]
    assert requests.get(f"{api}/api/health", timeout=5).json() == {"status": "ok", "redis": True, "version": "0.1.0"}
    presets = {p["name"]: p for p in requests.get(f"{api}/api/presets", timeout=5).json()}
    assert presets["figure-eight"]["defaults"]["lr"] == 0.003
    assert [r["lr"] for r in presets["figure-eight"]["pair"]] == [0.0025, 0.003]
    assert presets["digits"]["neuron_dim"] == 74
    assert "width" in {f["name"] for f in requests.get(f"{api}/api/fields", timeout=5).json()}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_the_internet(live_stack, page):
    api = live_stack["api_url"]
    response = requests.get(f"{api}{page}", timeout=5)
    assert response.status_code == 200
    urls = re.findall(r"""(?:src|href|url|spec-url)\s*[=:]\s*["']([^"']+)["']""", response.text)
    assert "/openapi.json" in urls and any(u.endswith(".js") for u in urls), urls
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    for url in urls:
        asset = requests.get(f"{api}{url}", timeout=5)
        kind = next(k for suffix, k in kinds.items() if url.endswith(suffix))
        assert asset.status_code == 200 and kind in asset.headers["content-type"] and len(asset.content) > 100, url


def test_figure_eight_run_streams_analysed_frames(live_stack):
    api = live_stack["api_url"]
    events: list[str] = []

    def listen() -> None:  # the push channel announces frames as they are stored
        with requests.get(f"{api}/api/events", stream=True, timeout=60) as response:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    events.append(line)
                    if "frame" in line:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    run_id = post_run(api, **SHORT)
    run = wait_status(api, run_id, ("finished",), timeout=180)
    assert run["total_steps"] == 56 and run["steps_done"] == 56 and run["neuron_dim"] == 2
    # Every 5th step, plus the steps where test metrics are measured (every half epoch: 14, 28, 42).
    expected_steps = sorted({0, *range(5, 56, 5), 14, 28, 42, 56})
    wait_for(lambda: len(frames_of(api, run_id)) == len(expected_steps), 120, what="all frames analysed")
    index = frames_of(api, run_id)
    assert [f["step"] for f in index] == expected_steps
    assert all(f["metrics"]["train_loss"] > 0 for f in index)

    first = requests.get(f"{api}/api/runs/{run_id}/frames/0", timeout=10).json()
    coords = np.array(first["coords"]["raw"])
    assert coords.shape == (1024, 2)
    assert -2.11 < coords[:, 0].min() and coords[:, 0].max() < -1.89 and coords[:, 1].max() > 0.99
    h0 = first["diagrams"]["0"]
    assert sum(d is None for _, d in h0) == 1  # exactly one infinite H0 bar, sent as null
    assert first["persistence"]["method"] == "alpha"
    assert len(first["neuron_hue"]) == 1024 and len(first["knn_preservation"]) == 1024
    assert first["knn_preservation"] == [1.0] * 1024

    last = requests.get(f"{api}/api/runs/{run_id}/frames/56", timeout=10).json()
    assert not np.allclose(np.array(last["coords"]["raw"]), coords)  # the cloud moved
    assert last["metrics"]["interval_from"] == 55
    assert 0 < last["metrics"]["ratio_min"] <= 1 <= last["metrics"]["ratio_max"]

    batch = requests.get(f"{api}/api/runs/{run_id}/frames", params={"include": "full", "start": 10, "end": 30},
                         timeout=10).json()["frames"]
    assert [f["step"] for f in batch] == [10, 14, 15, 20, 25, 28, 30] and all("diagrams" in f for f in batch)
    listener.join(timeout=30)
    assert any("frame" in e for e in events)


def test_stop_and_divergence(live_stack):
    api = live_stack["api_url"]
    long_id = post_run(api, preset="figure-eight", epochs=200, snapshot_every=50, sharpness_every=0)
    wait_status(api, long_id, ("running",))
    response = requests.post(f"{api}/api/runs/{long_id}/stop", timeout=10)
    assert response.status_code == 202
    stopped = wait_status(api, long_id, ("stopped",), timeout=30)
    assert stopped["steps_done"] < stopped["total_steps"]

    diverging = post_run(api, preset="figure-eight", lr=100.0, epochs=2, snapshot_every=1, sharpness_every=0)
    run = wait_status(api, diverging, ("diverged",))
    assert run["error"] and ("nan" in run["error"] or "inf" in run["error"] or "non-finite" in run["error"])
    # Frames are analysed newest first: wait for the back-fill to reach step 0.
    kept = wait_for(lambda: [f for f in frames_of(api, diverging) if f["step"] == 0] and frames_of(api, diverging),
                    60, what="step 0 of the diverged run")
    assert all(math.isfinite(f["metrics"]["train_loss"] or 0) for f in kept)


def test_queued_run_can_be_stopped_before_it_starts(live_stack):
    api = live_stack["api_url"]
    blocker = post_run(api, preset="figure-eight", epochs=200, snapshot_every=100, sharpness_every=0)
    queued = post_run(api, **SHORT)
    assert requests.get(f"{api}/api/runs/{queued}", timeout=5).json()["status"] == "queued"
    assert requests.post(f"{api}/api/runs/{queued}/stop", timeout=5).json()["status"] == "stopped"
    requests.post(f"{api}/api/runs/{blocker}/stop", timeout=5)
    wait_status(api, blocker, ("stopped",), timeout=30)
    assert requests.get(f"{api}/api/runs/{queued}", timeout=5).json()["status"] == "stopped"


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"preset": "figure-eight", "lr": -1}, "lr", "lr must be > 0"),
        ({"preset": "figure-eight", "lr": 0}, "lr", "lr must be > 0"),
        ({"preset": "figure-eight", "width": 0}, "width", "width must be between 1 and 8192"),
        ({"preset": "figure-eight", "width": 100000}, "width", "width must be between 1 and 8192"),
        ({"preset": "nope"}, "preset", "unknown preset 'nope'"),
        ({"preset": "figure-eight", "optimizer": "lbfgs"}, "optimizer", "optimizer"),
        ({"preset": "figure-eight", "batch_size": 0}, "batch_size", "batch_size must be between"),
        ({"preset": "figure-eight", "epochs": 0}, "epochs", "epochs must be between"),
        ({"preset": "figure-eight", "snapshot_every": 0}, "snapshot_every", "snapshot_every must be between 1 and"),
        ({"preset": "figure-eight", "snapshot_every": 99999999999999999999999}, "snapshot_every",
         "snapshot_every must be between 1 and 1000000000"),
        ({"preset": "figure-eight", "sharpness_every": 10**30}, "sharpness_every",
         "sharpness_every must be between 0 and 1000000000"),
        ({"preset": "figure-eight", "sharpness_subset": 10**30}, "sharpness_subset",
         "sharpness_subset must be between 1 and 100000"),
        ({"preset": "figure-eight", "seed": 10**30}, "seed", "seed must be between 0 and 4294967295"),
        ({"preset": "figure-eight", "batch_size": 10**30}, "batch_size", "batch_size must be between 1 and 100000"),
        ({"preset": "figure-eight", "epochs": 10**30}, "epochs", "epochs must be between 1 and 10000"),
        ({"preset": "figure-eight", "width": True}, "width", "width: Input should be a valid integer"),
        ({"preset": "figure-eight", "momentum": 0.5}, "momentum", "momentum applies to the momentum optimizer only"),
        ({"preset": "two-circles", "momentum": 0.9}, "momentum", "momentum applies to the momentum optimizer only"),
        ({"preset": "figure-eight", "data_path": "/tmp/mnist.npz"}, "data_path",
         "data_path applies to the mnist preset only"),
        ({"preset": "mnist"}, "data_path",
         "data_path is required for the mnist preset (an IDX directory or a .npz file)"),
        ({"preset": "figure-eight", "optimizer_state_in_neuron": True}, "optimizer_state_in_neuron",
         "optimizer_state_in_neuron applies to the adam optimizer only"),
        ({"preset": "figure-eight", "colour": "red"}, "colour", "unknown field 'colour'"),
        ({"preset": "figure-eight", "lr": "fast"}, "lr", "lr: Input should be a valid number"),
        ({}, "preset", "preset is required"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(live_stack, body, field, message):
    response = requests.post(f"{live_stack['api_url']}/api/runs", json=body, timeout=10)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(d["loc"] == ["body", field] and message in d["msg"] for d in detail), detail


def test_lr_nan_and_non_object_bodies_are_refused(live_stack):
    api = live_stack["api_url"]
    response = requests.post(f"{api}/api/runs", data='{"preset": "figure-eight", "lr": NaN}',
                             headers={"content-type": "application/json"}, timeout=5)
    assert response.status_code == 422
    assert requests.post(f"{api}/api/runs", json=[1, 2], timeout=5).status_code == 422
    assert requests.post(f"{api}/api/runs", data="{", headers={"content-type": "application/json"},
                         timeout=5).status_code == 422


def test_unknown_ids_are_404_and_client_mistakes_4xx(live_stack):
    api = live_stack["api_url"]
    assert requests.get(f"{api}/api/runs/nope", timeout=5).status_code == 404
    assert requests.post(f"{api}/api/runs/nope/stop", timeout=5).status_code == 404
    assert requests.get(f"{api}/api/runs/nope/frames", timeout=5).status_code == 404
    assert requests.get(f"{api}/api/runs/nope/frames/0", timeout=5).status_code == 404
    assert requests.get(f"{api}/api/runs/nope/frames/abc", timeout=5).status_code == 422
    with requests.get(f"{api}/api/events", params={"run_id": "nope"}, stream=True, timeout=5) as response:
        assert response.status_code == 404 and response.json() == {"detail": "no run with id 'nope'"}
    runs = requests.get(f"{api}/api/runs", timeout=5).json()
    if runs:
        assert requests.get(f"{api}/api/runs/{runs[0]['id']}/frames/999999", timeout=5).status_code == 404
        assert requests.get(f"{api}/api/runs/{runs[0]['id']}/frames", params={"limit": 0, "include": "full"},
                            timeout=5).status_code == 422


def test_paper_pair_shows_which_run_leaves_the_topology_preserving_phase(live_stack):
    api = live_stack["api_url"]
    response = requests.post(f"{api}/api/runs/pair", json={"preset": "figure-eight", "epochs": 1,
                                                           "sharpness_every": 0}, timeout=10)
    assert response.status_code == 201
    small_id, large_id = response.json()["ids"]
    assert response.json()["compare"] == f"/compare?runs={small_id},{large_id}"
    for run_id in (small_id, large_id):
        wait_status(api, run_id, ("finished",), timeout=180)
        wait_for(lambda: len(frames_of(api, run_id)) == 15, 120, what="the pair's frames")  # 0, 2, ..., 28
    small = requests.get(f"{api}/api/runs/{small_id}", timeout=5).json()
    large = requests.get(f"{api}/api/runs/{large_id}", timeout=5).json()
    assert (small["config"]["lr"], large["config"]["lr"]) == (0.0025, 0.003)
    # The catapult of the larger step drives lr * K_emp past 1 around step 15; the smaller one stays below.
    assert small["phase_exit"] is None
    assert large["phase_exit"]["step"] in (14, 16, 18) and large["phase_exit"]["eta_k_emp"] > 1
    small_max = max(f["metrics"]["eta_k_emp"] for f in frames_of(api, small_id)[1:])
    assert small_max < 0.5


def test_betti_curve_at_another_scale_and_standardised(live_stack):
    api = live_stack["api_url"]
    run_id = post_run(api, preset="figure-eight", epochs=1, snapshot_every=14, sharpness_every=0)
    wait_status(api, run_id, ("finished",))
    wait_for(lambda: len(frames_of(api, run_id)) == 3, 60, what="frames")
    raw = requests.get(f"{api}/api/runs/{run_id}/betti", timeout=10).json()
    std = requests.get(f"{api}/api/runs/{run_id}/betti", params={"standardised": "true"}, timeout=10).json()
    assert raw["steps"] == [0, 14, 28]
    # The pitfall of the paper's scale: the 0.2-wide figure eight's loops are filled in raw coordinates.
    assert raw["betti"][0] == [1, 0] and std["betti"][0] == [1, 2]
    assert "standardised" in std["scale_rule"]
    fine = requests.get(f"{api}/api/runs/{run_id}/betti", params={"scale": 0.02}, timeout=10).json()
    assert fine["betti"][0][1] >= 2
    assert requests.get(f"{api}/api/runs/{run_id}/betti", params={"scale": 0}, timeout=10).status_code == 422
    knn = requests.get(f"{api}/api/runs/{run_id}/neighbourhood", params={"k": 5}, timeout=10).json()
    assert knn["steps"] == [0, 14, 28] and knn["mean"][0] == 1.0 and knn["mean"][2] < 1.0
    one = requests.get(f"{api}/api/runs/{run_id}/neighbourhood", params={"k": 5, "step": 28}, timeout=10).json()
    assert len(one["per_neuron"]) == 1024 and abs(np.mean(one["per_neuron"]) - knn["mean"][2]) < 1e-3


def test_mnist_preset_reads_a_local_file_and_fails_clearly_without_one(live_stack, tmp_path):
    api = live_stack["api_url"]
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist-small.npz"
    np.savez(path, x_train=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 64),
             x_test=rng.integers(0, 256, (32, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 32))
    run_id = post_run(api, preset="mnist", data_path=str(path), width=32, batch_size=16, epochs=1,
                      snapshot_every=2, sharpness_every=2, sharpness_subset=32)
    run = wait_status(api, run_id, ("finished",))
    assert run["neuron_dim"] == 794 and run["total_steps"] == 4
    wait_for(lambda: len(frames_of(api, run_id)) == 3, 120, what="MNIST frames")
    frame = requests.get(f"{api}/api/runs/{run_id}/frames/4", timeout=10).json()
    assert set(frame["coords"]) == {"pca", "umap"} and len(frame["coords"]["umap"]) == 32
    assert 0 <= frame["metrics"]["accuracy"] <= 1 and frame["metrics"]["sharpness"] > 0

    missing = post_run(api, preset="mnist", data_path=str(tmp_path / "nope.npz"), epochs=1)
    failed = wait_status(api, missing, ("failed",))
    assert "data file not found" in failed["error"] and "nope.npz" in failed["error"]
    response = requests.post(f"{api}/api/runs", json={"preset": "mnist"}, timeout=5)
    assert response.status_code == 422 and "data_path is required" in response.text


def test_unknown_preset_reports_only_that_and_stopping_an_ended_run_is_a_conflict(live_stack):
    api = live_stack["api_url"]
    response = requests.post(f"{api}/api/runs", json={"preset": "nope"}, timeout=5)
    assert response.status_code == 422 and len(response.json()["detail"]) == 1
    run_id = post_run(api, preset="figure-eight", epochs=1, snapshot_every=28, sharpness_every=0)
    wait_status(api, run_id, ("finished",))
    response = requests.post(f"{api}/api/runs/{run_id}/stop", timeout=5)
    assert response.status_code == 409 and "already ended (finished)" in response.json()["detail"]


def test_huge_integer_parameters_are_422_naming_the_parameter_and_absent_steps_404(live_stack):
    api = live_stack["api_url"]
    run_id = post_run(api, preset="figure-eight", epochs=1, snapshot_every=28, sharpness_every=0)
    wait_status(api, run_id, ("finished",))
    wait_for(lambda: len(frames_of(api, run_id)) == 3, 60, what="frames 0, 14, 28")
    with requests.get(f"{api}/api/events", params={"run_id": run_id}, stream=True, timeout=5) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    huge = "99999999999999999999999"
    for path, params, name in [
        (f"frames/{2**63}", {}, "step"),
        (f"frames/{huge}", {}, "step"),
        ("frames", {"start": huge}, "start"),
        ("frames", {"end": huge}, "end"),
        ("frames", {"include": "full", "start": huge}, "start"),
        ("frames", {"include": "full", "limit": huge}, "limit"),
        ("neighbourhood", {"k": 5, "step": huge}, "step"),
        ("neighbourhood", {"k": huge}, "k"),
        ("betti", {"scale": "1e999"}, "scale"),
    ]:
        response = requests.get(f"{api}/api/runs/{run_id}/{path}", params=params, timeout=10)
        assert response.status_code == 422, (path, params, response.text)
        [error] = response.json()["detail"]
        assert error["loc"][-1] == name and error["msg"].startswith(f"{name}: Input should be less than"), error
    # The largest step SQLite can hold is well-formed: absent, not invalid.
    largest = 2**63 - 1
    response = requests.get(f"{api}/api/runs/{run_id}/frames/{largest}", timeout=10)
    assert response.status_code == 404
    assert response.json()["detail"] == f"run {run_id!r} has no analysed frame at step {largest}"
    response = requests.get(f"{api}/api/runs/{run_id}/neighbourhood", params={"k": 5, "step": largest}, timeout=10)
    assert response.status_code == 404
    assert response.json()["detail"] == f"run {run_id!r} has no snapshot at step {largest}"
    index = requests.get(f"{api}/api/runs/{run_id}/frames", params={"start": 28, "end": largest}, timeout=10)
    assert [f["step"] for f in index.json()["frames"]] == [28]


def test_check_validates_without_starting_a_run(live_stack):
    api = live_stack["api_url"]
    before = requests.get(f"{api}/api/runs", timeout=10).json()
    ok = requests.post(f"{api}/api/runs/check", json={"preset": "figure-eight", "lr": 0.0025}, timeout=10)
    assert ok.status_code == 200 and ok.json()["config"]["lr"] == 0.0025 and ok.json()["config"]["width"] == 1024
    bad = requests.post(f"{api}/api/runs/check", json={"preset": "figure-eight", "width": 0, "lr": -1}, timeout=10)
    assert bad.status_code == 422
    assert {tuple(d["loc"]): d["msg"] for d in bad.json()["detail"]} == {
        ("body", "width"): "width must be between 1 and 8192", ("body", "lr"): "lr must be > 0 and finite"}
    assert requests.post(f"{api}/api/runs/check", json=[1], timeout=10).status_code == 422
    assert requests.get(f"{api}/api/runs", timeout=10).json() == before
