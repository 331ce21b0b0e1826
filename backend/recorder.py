"""The event recorder: applies run lifecycle events from Redis to the store and announces them.

It also notices a worker that died mid-run (its heartbeat key expired) and marks that run failed,
since run requests are acknowledged when taken and never retried.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import redis

from backend.analyser import NOTIFY_CHANNEL
from backend.store import LOST_WORKER, Store
from topowatch.wire import EVENTS, EVENTS_GROUP, Event, WireError
from worker.publisher import heartbeat_key

log = logging.getLogger("topowatch.recorder")

STATUS_OF_EVENT = {"started": "running", "finished": "finished", "failed": "failed", "diverged": "diverged",
                   "stopped": "stopped"}
_WATCHDOG_S = 5.0


def apply_event(store: Store, client: redis.Redis, event: Event) -> None:
    status = STATUS_OF_EVENT[event.kind]
    changed = store.set_status(
        event.run_id,
        status,
        # why it ended: the failure, the divergence, or what stopped it (the Stop button, a shut-down worker)
        error=event.message or None if status in ("failed", "diverged", "stopped") else None,
        steps_done=event.step if event.kind != "started" else None,
        device=event.info.get("device"),
        neuron_dim=event.info.get("neuron_dim"),
        total_steps=event.info.get("total_steps"),
    )
    if changed:
        client.publish(NOTIFY_CHANNEL, json.dumps({"type": "status", "run_id": event.run_id, "status": status}))


def check_heartbeats(store: Store, client: redis.Redis) -> None:
    """Mark runs whose worker went silent as failed, and revive them if the heartbeat comes back."""
    for run_id in store.running_run_ids():
        if not client.exists(heartbeat_key(run_id)) and store.set_status(run_id, "failed", error=LOST_WORKER):
            client.publish(NOTIFY_CHANNEL, json.dumps({"type": "status", "run_id": run_id, "status": "failed"}))
    for run_id in store.presumed_lost_run_ids():
        if client.exists(heartbeat_key(run_id)) and store.set_status(run_id, "running"):
            client.publish(NOTIFY_CHANNEL, json.dumps({"type": "status", "run_id": run_id, "status": "running"}))


def run_recorder(store: Store, redis_url: str, stopping: threading.Event) -> None:
    client = redis.Redis.from_url(redis_url)
    consumer = f"recorder-{socket.gethostname()}"
    last_watchdog = time.monotonic()
    while not stopping.is_set():
        try:
            try:
                client.xgroup_create(EVENTS, EVENTS_GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            for last_id in ("0", ">"):  # own pending first (a crash between apply and ack), then new
                reply = client.xreadgroup(EVENTS_GROUP, consumer, {EVENTS: last_id}, count=100,
                                          block=500 if last_id == ">" else None)
                for _, messages in reply or []:
                    for message_id, fields in messages:
                        if fields:
                            try:
                                apply_event(store, client, Event.decode(fields))
                            except WireError as exc:
                                log.warning("event %s rejected: %s", message_id, exc)
                        client.xack(EVENTS, EVENTS_GROUP, message_id)
                        client.xdel(EVENTS, message_id)
            if time.monotonic() - last_watchdog > _WATCHDOG_S:
                last_watchdog = time.monotonic()
                check_heartbeats(store, client)
        except redis.ConnectionError:
            log.warning("redis unreachable; retrying")
            stopping.wait(1.0)
