"""Publishing from the training loop without making it wait.

Snapshots are gathered for a few milliseconds in a buffer allocated once and written as one batch to the
relay process (worker/relay.py), which encodes and XADDs them: per snapshot the training thread pays for
copying the neurons into the buffer. A snapshot that follows a quiet spell goes out at once, so a slow run's
frames are never held back. A light thread here polls the run's stop key and refreshes its heartbeat a
few times a second.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import redis

from topowatch.wire import EVENTS, Event, stop_key
from worker.relay import RelayError, SnapshotRelay

HEARTBEAT_TTL_S = 60  # generous: a CPU-starved worker is slow, not dead
_POLL_S = 0.2
_BATCH_S = 0.02  # a batch is sent once its first snapshot is this old ...
_QUIET_S = 0.01  # ... or at once when the previous snapshot came this long ago
_BATCH_MAX = 256
_BATCH_BYTES = 1 << 20  # the relay's pipe holds about this much


def heartbeat_key(run_id: str) -> str:
    return f"topowatch:heartbeat:{run_id}"


class Publisher:
    def __init__(self, client: redis.Redis, relay: SnapshotRelay, run_id: str) -> None:
        self.run_id = run_id
        self.stop_requested = threading.Event()
        self._client = client
        self._relay = relay
        self._closed = threading.Event()
        self._buffer: np.ndarray | None = None  # (slots, N, D), reused batch after batch
        self._items: list[tuple[int, int, dict[str, Any]]] = []  # (step, epoch, metrics) per filled slot
        self._batch_started = 0.0
        self._last_snapshot = 0.0
        self._thread = threading.Thread(target=self._watch, name=f"control-{run_id}", daemon=True)
        self._thread.start()

    def snapshot(self, step: int, epoch: int, neurons: np.ndarray, metrics: dict[str, Any]) -> None:
        now = time.monotonic()
        if self._buffer is None or self._buffer.shape[1:] != neurons.shape:
            self._send()
            slots = max(1, min(_BATCH_MAX, _BATCH_BYTES // max(1, neurons.nbytes)))
            self._buffer = np.empty((slots, *neurons.shape), np.float32)
        if not self._items:
            self._batch_started = now
        self._buffer[len(self._items)] = neurons
        self._items.append((step, epoch, metrics))
        if (now - self._last_snapshot >= _QUIET_S or now - self._batch_started >= _BATCH_S
                or len(self._items) == len(self._buffer)):
            self._send()
        self._last_snapshot = now

    def flush(self) -> None:
        """Return once every snapshot taken so far is in Redis."""
        self._send()
        self._relay.flush()

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

    def _send(self) -> None:
        if self._items:
            assert self._buffer is not None
            self._relay.send(self.run_id, self._buffer[: len(self._items)], self._items)
            self._items = []

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
