"""The worker's publisher and its relay process against the real embedded Redis."""

import os
import threading

import numpy as np
import pytest
import redis

from tests.conftest import wait_for
from topowatch.redis_server import free_port, start_embedded_redis
from topowatch.wire import EVENTS, SNAPSHOTS, Event, Snapshot, stop_key
from worker.publisher import Publisher, heartbeat_key
import worker.relay as relay_module
from worker.relay import RelayError, SnapshotRelay, decode_frames, encode_frame


@pytest.fixture
def relay(redis_url):
    relay = SnapshotRelay(redis_url, max_backlog=10**6)
    yield relay
    relay.close()


def test_frames_survive_arbitrary_pipe_chunking():
    batch = {"run_id": "r1", "shape": [3, 2], "first": 7, "items": [[3, 0, {"train_loss": 0.5}]]}
    stream = encode_frame(batch) + encode_frame(None) + encode_frame({"arena": "/x", "size": 64})
    buffer, frames = bytearray(), []
    for start in range(0, len(stream), 7):  # a pipe may hand over any prefix
        buffer += stream[start : start + 7]
        frames += decode_frames(buffer)
    assert frames == [batch, None, {"arena": "/x", "size": 64}] and buffer == b""


def test_snapshots_wrap_around_a_small_arena_and_change_shape_between_runs(redis_client, relay, monkeypatch):
    monkeypatch.setattr(relay_module, "ARENA_BYTES", 64 + 5 * 4 * 6)  # five (3, 2) slots
    first = Publisher(redis_client, relay, "first")
    for step in range(23):  # over four times round the arena
        first.snapshot(step, 0, np.full((3, 2), step, np.float32), {"train_loss": float(step)})
    first.event("finished", 22)
    second = Publisher(redis_client, relay, "second")  # a wider neuron: a bigger arena
    second.snapshot(0, 0, np.arange(40, dtype=np.float32).reshape(4, 10), {"train_loss": float("nan")})
    second.event("finished", 0)
    got = [Snapshot.decode(f) for _, f in redis_client.xrange(SNAPSHOTS)]
    assert [(s.run_id, s.step) for s in got] == [("first", i) for i in range(23)] + [("second", 0)]
    for s in got[:23]:
        np.testing.assert_array_equal(s.neurons, np.full((3, 2), s.step, np.float32))
    np.testing.assert_array_equal(got[23].neurons, np.arange(40, dtype=np.float32).reshape(4, 10))
    assert got[23].metrics == {"train_loss": None}  # non-finite metrics travel as null
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("topowatch-arena-")], "arenas are unlinked"
    first.close()
    second.close()


def test_events_follow_every_snapshot_sent_before_them(redis_client, relay):
    publisher = Publisher(redis_client, relay, "run")
    for step in range(300):
        publisher.snapshot(step, 0, np.full((4, 2), step, np.float32), {"train_loss": 1.0})
    publisher.event("finished", 299)
    assert redis_client.xlen(SNAPSHOTS) == 300  # all in Redis before the event was sent
    messages = redis_client.xrange(SNAPSHOTS)
    steps = [Snapshot.decode(fields).step for _, fields in messages]
    assert steps == list(range(300))
    np.testing.assert_array_equal(Snapshot.decode(messages[7][1]).neurons, np.full((4, 2), 7, np.float32))
    (_, fields), = redis_client.xrange(EVENTS)
    assert Event.decode(fields).kind == "finished"
    publisher.close()


def test_stop_key_and_heartbeat(redis_client, relay):
    publisher = Publisher(redis_client, relay, "run")
    wait_for(lambda: redis_client.exists(heartbeat_key("run")), 5, what="the heartbeat")
    assert not publisher.should_stop()
    redis_client.set(stop_key("run"), "1")
    wait_for(publisher.should_stop, 5, what="the stop request to be seen")
    publisher.close()


def test_relay_holds_back_over_the_backlog_cap_and_drops_nothing(redis_url, redis_client):
    relay = SnapshotRelay(redis_url, max_backlog=5)
    publisher = Publisher(redis_client, relay, "run")
    for step in range(6):  # one batch over the cap: the stream may exceed it by at most one batch
        publisher.snapshot(step, 0, np.zeros((3, 2), np.float32), {})
    publisher.flush()
    for step in range(6, 12):
        publisher.snapshot(step, 0, np.zeros((3, 2), np.float32), {})
    flushed = threading.Thread(target=publisher.flush)
    flushed.start()
    flushed.join(1.0)
    assert flushed.is_alive() and redis_client.xlen(SNAPSHOTS) == 6, "nothing more while the backlog is full"
    redis_client.xtrim(SNAPSHOTS, maxlen=0)  # the analysers catch up
    flushed.join(10)
    assert not flushed.is_alive()
    assert [Snapshot.decode(f).step for _, f in redis_client.xrange(SNAPSHOTS)] == list(range(6, 12))
    publisher.close()
    relay.close()


def test_a_relay_that_cannot_reach_redis_fails_with_the_reason():
    relay = SnapshotRelay(f"redis://127.0.0.1:{free_port()}/0", max_backlog=10, retry_s=0.5)
    relay.put("run", 0, 0, np.zeros((3, 2), np.float32), {})
    with pytest.raises(RelayError, match=r"snapshot relay stopped \(exit code 1\): .*[Cc]onnect"):
        relay.flush()
    relay.close()


def test_the_relay_waits_through_a_redis_restart(tmp_path):
    port = free_port()
    relay = SnapshotRelay(f"redis://127.0.0.1:{port}/0", max_backlog=10**6, retry_s=30)
    for step in range(3):
        relay.put("run", step, 0, np.ones((3, 2), np.float32), {})
    flushed = threading.Thread(target=relay.flush)
    flushed.start()
    flushed.join(1.0)
    assert flushed.is_alive(), "no Redis yet: the relay keeps retrying"
    server = start_embedded_redis(tmp_path / "late", port=port)
    try:
        flushed.join(15)
        assert not flushed.is_alive()
        client = redis.Redis.from_url(server.url)
        assert [Snapshot.decode(f).step for _, f in client.xrange(SNAPSHOTS)] == [0, 1, 2]
    finally:
        relay.close()
        server.stop()


def test_a_run_whose_relay_gave_up_ends_failed_and_the_next_run_gets_a_fresh_relay(tmp_path, redis_client):
    port = free_port()
    snapshots_redis = start_embedded_redis(tmp_path / "a", port=port)
    relay = SnapshotRelay(snapshots_redis.url, max_backlog=10, retry_s=0.3)
    snapshots_redis.stop()  # Redis goes away for longer than the relay waits
    publisher = Publisher(redis_client, relay, "run")  # (its events go to a Redis that stays up)
    publisher.snapshot(0, 0, np.zeros((3, 2), np.float32), {})
    publisher.event("finished", 0)
    (_, fields), = redis_client.xrange(EVENTS)
    event = Event.decode(fields)
    assert event.kind == "failed" and "publishing snapshots failed" in event.message and "onnect" in event.message
    publisher.close()

    snapshots_redis = start_embedded_redis(tmp_path / "b", port=port)
    try:
        relay.ensure_running()
        publisher = Publisher(redis_client, relay, "next")
        publisher.snapshot(0, 0, np.zeros((3, 2), np.float32), {})
        publisher.flush()
        client = redis.Redis.from_url(snapshots_redis.url)
        assert [Snapshot.decode(f).run_id for _, f in client.xrange(SNAPSHOTS)] == ["next"]
        publisher.close()
    finally:
        relay.close()
        snapshots_redis.stop()
