"""The worker's publisher against the real embedded Redis."""

import numpy as np

from tests.conftest import wait_for
from topowatch.wire import EVENTS, SNAPSHOTS, Event, Snapshot, stop_key
from worker.publisher import Publisher, heartbeat_key


def test_events_follow_every_snapshot_queued_before_them(redis_client):
    publisher = Publisher(redis_client, "run", max_backlog=10**6)
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


def test_stop_key_and_heartbeat(redis_client):
    publisher = Publisher(redis_client, "run", max_backlog=10**6)
    wait_for(lambda: redis_client.exists(heartbeat_key("run")), 5, what="the heartbeat")
    assert not publisher.should_stop()
    redis_client.set(stop_key("run"), "1")
    wait_for(publisher.should_stop, 5, what="the stop request to be seen")
    publisher.close()
