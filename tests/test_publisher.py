"""The worker's publisher and its relay process against the real embedded Redis."""

import threading

import numpy as np
import pytest
import redis

from tests.conftest import wait_for
from topowatch.redis_server import free_port, start_embedded_redis
from topowatch.wire import EVENTS, SNAPSHOTS, Event, Snapshot, stop_key
from worker.publisher import Publisher, heartbeat_key
from worker.relay import RelayError, SnapshotRelay, decode_frames, encode_batch


@pytest.fixture
def relay(redis_url):
    relay = SnapshotRelay(redis_url, max_backlog=10**6)
    yield relay
    relay.close()


def test_frames_survive_arbitrary_pipe_chunking():
    matrices = np.stack([np.arange(6, dtype=np.float32).reshape(3, 2), -np.arange(6, dtype=np.float32).reshape(3, 2)])
    items = [(3, 0, {"train_loss": 0.5}), (4, 1, {"train_loss": float("nan")})]
    stream = b"".join([*encode_batch("r1", matrices, items), b"\0" * 8,  # zero lengths: a flush
                       *encode_batch("r2", matrices[:1], items[:1])])
    buffer, frames = bytearray(), []
    for start in range(0, len(stream), 7):  # a pipe may hand over any prefix
        buffer += stream[start : start + 7]
        frames += decode_frames(buffer)
    assert buffer == b"" and len(frames) == 3 and frames[1] is None
    first, second = frames[0][1], frames[2][0]
    assert (first.run_id, first.step, first.epoch, second.run_id, second.step) == ("r1", 4, 1, "r2", 3)
    np.testing.assert_array_equal(first.neurons, matrices[1])
    # a NaN metric reaches the wire message as null, as the wire format says
    assert '"train_loss": null' in first.encode()["header"]


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
    relay.send("run", np.zeros((1, 3, 2), np.float32), [(0, 0, {})])
    with pytest.raises(RelayError, match=r"snapshot relay stopped \(exit code 1\): .*[Cc]onnect"):
        relay.flush()
    relay.close()


def test_the_relay_waits_through_a_redis_restart(tmp_path):
    port = free_port()
    relay = SnapshotRelay(f"redis://127.0.0.1:{port}/0", max_backlog=10**6, retry_s=30)
    relay.send("run", np.ones((3, 3, 2), np.float32), [(0, 0, {}), (1, 0, {}), (2, 0, {})])
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
