"""Publishing from the training loop without making it wait.

The loop hands a copied neuron matrix to a queue (a copy and a put); a background thread encodes the
messages and XADDs them in pipelined batches, watches the run's stop key and refreshes its heartbeat.
The queue is bounded and the thread pauses while the analysers' backlog is over its cap, so memory stays
bounded and no snapshot is ever dropped.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np
import redis

from topowatch.wire import EVENTS, SNAPSHOTS, Event, Snapshot, stop_key

HEARTBEAT_TTL_S = 60  # generous: a CPU-starved worker is slow, not dead
_POLL_S = 0.2
_BATCH_S = 0.05


def heartbeat_key(run_id: str) -> str:
    return f"topowatch:heartbeat:{run_id}"


class Publisher:
    def __init__(self, client: redis.Redis, run_id: str, max_backlog: int, queue_size: int = 1024) -> None:
        self.run_id = run_id
        self.stop_requested = threading.Event()
        self._client = client
        self._max_backlog = max_backlog
        self._queue: queue.Queue[Snapshot | None] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"publisher-{run_id}", daemon=True)
        self._thread.start()

    def snapshot(self, step: int, epoch: int, neurons: np.ndarray, metrics: dict[str, Any]) -> None:
        if self._error is not None:
            raise RuntimeError("snapshot publisher failed") from self._error
        self._queue.put(Snapshot(self.run_id, step, epoch, neurons, metrics))

    def should_stop(self) -> bool:
        return self.stop_requested.is_set()

    def event(self, kind: str, step: int = 0, message: str = "", **info: Any) -> None:
        """Send a lifecycle event after every snapshot queued before it, so the order on the wire is kept."""
        if kind != "started":
            self.flush()
        self._client.xadd(EVENTS, Event(self.run_id, kind, step, message, info).encode())

    def flush(self) -> None:
        self._wake.set()
        self._queue.join()
        if self._error is not None:
            raise RuntimeError("snapshot publisher failed") from self._error

    def close(self) -> None:
        # The heartbeat key is left to expire: deleting it could let the watchdog see a silent "running" run
        # before the recorder has read this run's final event.
        self._queue.put(None)
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        last_poll = 0.0
        done = False
        while not done:
            # Wake a few times a second, not per snapshot: the training thread's put stays a cheap append and
            # one pipelined round trip carries everything queued meanwhile.
            self._wake.wait(_BATCH_S)
            self._wake.clear()
            batch: list[Snapshot] = []
            taken = 0
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if item is None:
                    done = True
                else:
                    batch.append(item)
            try:
                if batch:
                    self._wait_for_backlog()
                    pipe = self._client.pipeline(transaction=False)
                    for snapshot in batch:
                        pipe.xadd(SNAPSHOTS, snapshot.encode())
                    pipe.execute()
                if time.monotonic() - last_poll >= _POLL_S:
                    last_poll = time.monotonic()
                    self._poll_control()
            except BaseException as exc:  # surfaced to the training loop on its next call
                self._error = exc
                self.stop_requested.set()
                self._drain()
                return
            finally:
                for _ in range(taken):  # only now: flush() returns once the batch is really in Redis
                    self._queue.task_done()

    def _poll_control(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(stop_key(self.run_id))
        pipe.set(heartbeat_key(self.run_id), "1", ex=HEARTBEAT_TTL_S)
        stop, _ = pipe.execute()
        if stop:
            self.stop_requested.set()

    def _wait_for_backlog(self) -> None:
        while self._client.xlen(SNAPSHOTS) > self._max_backlog:
            self._poll_control()
            time.sleep(_POLL_S)

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                return
