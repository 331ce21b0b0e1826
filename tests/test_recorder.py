"""Lifecycle events applied to the store, and the watchdog for silent workers (real Redis, real SQLite)."""

from backend.recorder import apply_event, check_heartbeats
from backend.store import LOST_WORKER, Store
from topowatch.wire import Event
from worker.publisher import heartbeat_key


def test_a_presumed_lost_worker_that_comes_back_keeps_its_run(redis_client, tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.create_run("r", "figure-eight", {}, total_steps=0)
    apply_event(store, redis_client, Event("r", "started", info={"total_steps": 56, "neuron_dim": 2}))
    assert store.get_run("r")["status"] == "running" and store.get_run("r")["total_steps"] == 56

    check_heartbeats(store, redis_client)  # no heartbeat key: the worker looks dead
    assert (store.get_run("r")["status"], store.get_run("r")["error"]) == ("failed", LOST_WORKER)

    redis_client.set(heartbeat_key("r"), "1")  # it was only starved
    check_heartbeats(store, redis_client)
    run = store.get_run("r")
    assert run["status"] == "running" and run["finished_at"] is None

    check_heartbeats(store, redis_client)
    apply_event(store, redis_client, Event("r", "finished", step=56))
    run = store.get_run("r")
    assert (run["status"], run["error"], run["steps_done"]) == ("finished", None, 56)


def test_final_statuses_are_final(redis_client, tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.create_run("r", "figure-eight", {}, total_steps=0)
    apply_event(store, redis_client, Event("r", "diverged", step=4, message="training loss became nan"))
    apply_event(store, redis_client, Event("r", "finished", step=9))
    run = store.get_run("r")
    assert (run["status"], run["error"], run["steps_done"]) == ("diverged", "training loss became nan", 4)
