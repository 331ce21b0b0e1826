"""Publishing from the training loop without making it wait.

Each snapshot is copied into shared memory and handed to the relay process (worker/relay.py), which
encodes and XADDs it: the training thread pays for that copy. A light thread here polls the run's stop
key and refreshes its heartbeat a few times a second; lifecycle events follow every snapshot before them.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import redis

from topowatch.wire import EVENTS, Event, stop_key
from worker.relay import RelayError, SnapshotRelay

HEARTBEAT_TTL_S = 60  # generous: a CPU-starved worker is slow, not dead
_POLL_S = 0.2


def heartbeat_key(run_id: str) -> str:
    return f"topowatch:heartbeat:{run_id}"


class Publisher:
    def __init__(self, client: redis.Redis, relay: SnapshotRelay, run_id: str) -> None:
        self.run_id = run_id
        self.stop_requested = threading.Event()
        self.stop_reason = "on request"  # what the run's "stopped" event says
        self._client = client
        self._relay = relay
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"control-{run_id}", daemon=True)
        self._thread.start()

    def snapshot(self, step: int, epoch: int, neurons: np.ndarray, metrics: dict[str, Any]) -> None:
        self._relay.put(self.run_id, step, epoch, neurons, metrics)

    def flush(self) -> None:
        """Return once every snapshot taken so far is in Redis."""
        self._relay.flush()

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stop_requested.set()

    def should_stop(self) -> bool:
        return self.stop_requested.is_set()

    def event(self, kind: str, step: int = 0, message: str = "", **info: Any) -> None:
        """Send a lifecycle event after every snapshot sent before it, so the order on the wire is kept.

        If the relay has stopped, the run's last word is that it failed, and why."""
        if kind != "started":
            try:
                self.flush()
            except RelayError as exc:
                if kind != "failed":
                    kind, message = "failed", f"publishing snapshots failed: {exc}"
        self._client.xadd(EVENTS, Event(self.run_id, kind, step, message, info).encode())

    def close(self) -> None:
        # The heartbeat key is left to expire: deleting it could let the watchdog see a silent "running" run
        # before the recorder has read this run's final event.
        self._closed.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._closed.is_set():
            try:
                pipe = self._client.pipeline(transaction=False)
                pipe.exists(stop_key(self.run_id))
                pipe.set(heartbeat_key(self.run_id), "1", ex=HEARTBEAT_TTL_S)
                stop, _ = pipe.execute()
            except redis.RedisError:
                stop = False  # Redis is briefly away: the relay's own errors end the run if it stays away
            if stop:
                self.stop_requested.set()
            self._closed.wait(_POLL_S)
