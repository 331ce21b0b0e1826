"""The analysis consumer against the real embedded Redis and a real SQLite store."""

import numpy as np
import pytest

from backend.analyser import Analyser
from backend.store import Store
from topowatch.wire import ANALYSER_GROUP, DEAD_LETTER, SNAPSHOTS, Snapshot
from worker.model import figure_eight


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.create_run("run", "figure-eight", {"lr": 0.003, "seed": 0}, total_steps=10)
    return store


def publish(client, step: int, neurons: np.ndarray, run_id: str = "run") -> bytes:
    return client.xadd(SNAPSHOTS, Snapshot(run_id, step, 0, neurons, {"train_loss": 1.0 / (step + 1)}).encode())


def cloud(step: int) -> np.ndarray:
    return (figure_eight(200, np.random.default_rng(0)) * (1 + 0.01 * step)).astype(np.float32)


def analysis_order(analyser, store) -> list[int]:
    order = []
    while analyser.analyse_next():
        order.append(next(f["step"] for f in store.frame_index("run") if f["step"] not in order))
    return order


def test_newest_snapshot_first_then_the_backlog_oldest_first(redis_client, store):
    analyser = Analyser(redis_client, store, "a0", claim_idle_ms=60_000, live_every_s=60)
    for step in range(0, 5):
        publish(redis_client, step, cloud(step))
    analyser.intake(block_ms=None)
    # the live view first; then the early steps (where a run may leave the phase) before the rest
    assert analysis_order(analyser, store) == [4, 0, 1, 2, 3]
    frames = store.frame_index("run")
    assert [f["step"] for f in frames] == [0, 1, 2, 3, 4]
    # The topology change of step 4 needs step 3's diagrams, which were computed later: it is linked back.
    assert all(f["metrics"]["bottleneck"] is not None for f in frames[1:])
    assert frames[4]["metrics"]["interval_from"] == 3
    np.testing.assert_allclose(frames[4]["metrics"]["ratio_min"], 1.04 / 1.03, rtol=2e-3)  # a pure scaling (float32 on the wire)
    assert redis_client.xlen(SNAPSHOTS) == 0  # acknowledged and deleted: the stream holds only the backlog
    assert redis_client.xpending(SNAPSHOTS, ANALYSER_GROUP)["pending"] == 0


def test_the_live_view_gets_the_newest_again_once_it_has_waited(redis_client, store):
    analyser = Analyser(redis_client, store, "a0", claim_idle_ms=60_000, live_every_s=0)
    for step in range(0, 4):
        publish(redis_client, step, cloud(step))
    analyser.intake(block_ms=None)
    assert analysis_order(analyser, store) == [3, 2, 1, 0]  # waiting 0 s: always the newest


def test_malformed_and_unknown_run_messages_go_to_dead_letter(redis_client, store):
    analyser = Analyser(redis_client, store, "a0", claim_idle_ms=60_000)
    good = Snapshot("run", 0, 0, cloud(0), {}).encode()
    redis_client.xadd(SNAPSHOTS, good | {"data": b"\x00" * 10})
    redis_client.xadd(SNAPSHOTS, good | {"header": "{"})
    publish(redis_client, 0, cloud(0), run_id="ghost")
    publish(redis_client, 0, cloud(0))
    analyser.intake(block_ms=None)
    assert analyser.analyse_next() and not analyser.analyse_next()
    assert [f["step"] for f in store.frame_index("run")] == [0]
    dead = redis_client.xrange(DEAD_LETTER)
    reasons = sorted(fields[b"reason"].decode() for _, fields in dead)
    assert len(reasons) == 3
    assert any("bytes" in r for r in reasons) and any("not JSON" in r for r in reasons)
    assert any("unknown run 'ghost'" in r for r in reasons)
    assert redis_client.xpending(SNAPSHOTS, ANALYSER_GROUP)["pending"] == 0


def test_a_restarted_analyser_picks_up_its_pending_work(redis_client, store):
    first = Analyser(redis_client, store, "a0", claim_idle_ms=60_000)
    for step in range(3):
        publish(redis_client, step, cloud(step))
    first.intake(block_ms=None)  # delivered, raw stored, not yet analysed: then the process "dies"
    assert redis_client.xpending(SNAPSHOTS, ANALYSER_GROUP)["pending"] == 3
    restarted = Analyser(redis_client, store, "a0", claim_idle_ms=60_000)
    restarted.intake(block_ms=None)
    while restarted.analyse_next():
        pass
    assert [f["step"] for f in store.frame_index("run")] == [0, 1, 2]
    assert redis_client.xpending(SNAPSHOTS, ANALYSER_GROUP)["pending"] == 0


def test_a_silent_consumers_work_is_claimed_and_redelivery_is_not_analysed_twice(redis_client, store):
    silent = Analyser(redis_client, store, "silent", claim_idle_ms=0)
    for step in range(2):
        publish(redis_client, step, cloud(step))
    silent.intake(block_ms=None)
    silent.analyse_next()  # step 1 analysed and acknowledged
    # Step 0's frame reached the store but the process died before acknowledging it:
    store.put_frame("run", 0, 0, {"marker": "first analysis"}, {})
    other = Analyser(redis_client, store, "other", claim_idle_ms=0)
    other.intake(block_ms=None)
    while other.analyse_next():
        pass
    assert [f["step"] for f in store.frame_index("run")] == [0, 1]
    assert store.frame_index("run")[0]["metrics"] == {"marker": "first analysis"}  # acknowledged, not redone
    assert redis_client.xpending(SNAPSHOTS, ANALYSER_GROUP)["pending"] == 0


def test_runs_take_turns_so_a_busy_run_does_not_starve_another(redis_client, store):
    store.create_run("other", "figure-eight", {"lr": 0.003, "seed": 0}, total_steps=10)
    analyser = Analyser(redis_client, store, "a0", claim_idle_ms=60_000)
    for step in range(4):
        publish(redis_client, step, cloud(step))
    publish(redis_client, 0, cloud(0), run_id="other")
    publish(redis_client, 1, cloud(1), run_id="other")
    analyser.intake(block_ms=None)
    served = []
    for _ in range(4):
        before = {run: len(store.frame_index(run)) for run in ("run", "other")}
        assert analyser.analyse_next()
        served.append(next(run for run in before if len(store.frame_index(run)) > before[run]))
    assert served == ["run", "other", "run", "other"]
    assert [f["step"] for f in store.frame_index("other")] == [0, 1]
    assert [f["step"] for f in store.frame_index("run")] == [0, 3]  # the newest, then the oldest
