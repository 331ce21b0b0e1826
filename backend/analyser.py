"""The analysis consumer: snapshots from Redis in, analysed frames into the durable store.

Reliability rules, in order of what happens to a message:
1. read through the consumer group (new messages, this consumer's own pending ones after a restart, and
   those of a silent consumer, claimed after ``claim_idle_ms``);
2. malformed or for an unknown run -> copied to the dead-letter stream, acknowledged, deleted;
3. the raw snapshot is written to the store at once, so the message's data is safe on disk;
4. within a run the newest snapshot is analysed first, and again whenever the live view has waited
   ``live_every_s``; between those, the backlog is back-filled oldest first (so a run's early steps, where
   it may leave the topology-preserving phase, do not wait for the end); runs take turns;
5. a message is acknowledged and deleted from the stream only after its frame is stored, which keeps the
   stream bounded by the unanalysed backlog without ever dropping one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import redis

from backend.analysis import Reference, analyse, topology_change
from backend.store import Store
from topowatch.settings import Settings
from topowatch.wire import ANALYSER_GROUP, DEAD_LETTER, SNAPSHOTS, Snapshot, WireError

log = logging.getLogger("topowatch.analyser")

NOTIFY_CHANNEL = "topowatch:notify"
_READ_COUNT = 1000
_REFERENCE_CACHE = 16
LIVE_EVERY_S = 0.5  # the live view gets a fresh frame at least this often while a backlog is back-filled


@dataclass(frozen=True)
class Pending:
    message_id: bytes
    run_id: str
    step: int


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(SNAPSHOTS, ANALYSER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def dead_letter(client: redis.Redis, message_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
    log.warning("snapshot message %s rejected: %s", message_id.decode(), reason)
    record = {b"reason": reason.encode(), b"original_id": message_id} | {b"orig:" + k: v for k, v in fields.items()}
    pipe = client.pipeline(transaction=False)
    pipe.xadd(DEAD_LETTER, record, maxlen=10_000, approximate=True)
    pipe.xack(SNAPSHOTS, ANALYSER_GROUP, message_id)
    pipe.xdel(SNAPSHOTS, message_id)
    pipe.execute()


class Analyser:
    def __init__(self, client: redis.Redis, store: Store, consumer: str, claim_idle_ms: int,
                 live_every_s: float = LIVE_EVERY_S) -> None:
        self.client = client
        self.store = store
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self._todo: dict[bytes, Pending] = {}
        self._references: OrderedDict[str, Reference] = OrderedDict()
        self._served: dict[str, int] = {}  # run id -> turn it was last served
        self._live_every_s = live_every_s
        self._live_at: dict[str, float] = {}  # run id -> when its newest snapshot was last taken first
        self._turn = 0
        ensure_group(client)

    # --- intake -------------------------------------------------------------------------------
    def intake(self, block_ms: int | None) -> int:
        """Read new messages (and, when idle, this consumer's and silent consumers' pending ones)."""
        count = 0
        if not self._todo:
            count += self._accept(self._read("0", None))  # own pending: left over by a crash or restart
            count += self._accept(self._claim())
        count += self._accept(self._read(">", block_ms if not self._todo and count == 0 else None))
        return count

    def _read(self, last_id: str, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply = self.client.xreadgroup(ANALYSER_GROUP, self.consumer, {SNAPSHOTS: last_id}, count=_READ_COUNT,
                                       block=block_ms)
        return [m for _, messages in reply or [] for m in messages if m[1]]

    def _claim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply = self.client.xautoclaim(SNAPSHOTS, ANALYSER_GROUP, self.consumer, self.claim_idle_ms,
                                       start_id="0-0", count=_READ_COUNT)
        return [m for m in reply[1] if m[1]]

    def _accept(self, messages: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        for message_id, fields in messages:
            if message_id in self._todo:
                continue
            try:
                snapshot = Snapshot.decode(fields)
            except WireError as exc:
                dead_letter(self.client, message_id, fields, str(exc))
                continue
            if not self.store.run_exists(snapshot.run_id):
                dead_letter(self.client, message_id, fields, f"unknown run {snapshot.run_id!r}")
                continue
            self.store.put_snapshot(snapshot.run_id, snapshot.step, snapshot.epoch, snapshot.neurons, snapshot.metrics)
            self._todo[message_id] = Pending(message_id, snapshot.run_id, snapshot.step)
        return len(messages)

    # --- analysis -----------------------------------------------------------------------------
    def analyse_next(self) -> bool:
        """Analyse one ready snapshot; False when nothing is ready.

        Within a run the newest snapshot goes first when the live view has waited long enough, else the oldest
        one (back-filling in order); runs take turns, least recently served first, so one slow run never
        starves another."""
        by_run: dict[str, list[Pending]] = {}
        for pending in self._todo.values():
            by_run.setdefault(pending.run_id, []).append(pending)
        for run_id in sorted(by_run, key=lambda r: self._served.get(r, -1)):
            reference = self._reference(run_id)
            if reference is None:
                continue  # step 0 not stored yet: every frame is measured against it
            pending = self._pick(run_id, by_run[run_id])
            self._analyse(pending, reference)
            del self._todo[pending.message_id]
            self._turn += 1
            self._served = {r: t for r, t in self._served.items() if r in by_run} | {run_id: self._turn}
            self._live_at = {r: t for r, t in self._live_at.items() if r in by_run}
            return True
        return False

    def _pick(self, run_id: str, candidates: list[Pending]) -> Pending:
        now = time.monotonic()
        if now - self._live_at.get(run_id, -math.inf) >= self._live_every_s:
            self._live_at[run_id] = now
            return max(candidates, key=lambda p: _stream_order(p.message_id))
        return min(candidates, key=lambda p: _stream_order(p.message_id))

    def _reference(self, run_id: str) -> Reference | None:
        if run_id in self._references:
            self._references.move_to_end(run_id)
            return self._references[run_id]
        step0 = self.store.get_snapshot(run_id, 0)
        if step0 is None:
            return None
        self._references[run_id] = Reference.from_step0(step0.neurons)
        if len(self._references) > _REFERENCE_CACHE:
            self._references.popitem(last=False)
        return self._references[run_id]

    def _analyse(self, pending: Pending, reference: Reference) -> None:
        run_id, step = pending.run_id, pending.step
        if not self.store.has_frame(run_id, step):
            snapshot = self.store.get_snapshot(run_id, step)
            config = self.store.run_config(run_id) or {}
            previous = self.store.previous_snapshot(run_id, step)
            earlier = self.store.nearest_earlier_frame(run_id, step)
            previous_umap = None
            if earlier is not None and "umap" in earlier["coords"]:
                previous_umap = np.asarray(earlier["coords"]["umap"], dtype=np.float64)
            frame = analyse(
                snapshot.neurons,
                step,
                lr=float(config.get("lr", 0.0)),
                snapshot_metrics=snapshot.metrics,
                reference=reference,
                previous=(previous.step, previous.neurons) if previous is not None else None,
                previous_umap=previous_umap,
                seed=int(config.get("seed", 0)),
            )
            metrics = frame.metrics
            if earlier is not None and previous is not None and earlier["step"] == previous.step:
                metrics["bottleneck"] = topology_change(earlier, frame.payload)
            if self.store.put_frame(run_id, step, snapshot.epoch, metrics, frame.payload):
                self._link_next(run_id, step, frame.payload)
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(SNAPSHOTS, ANALYSER_GROUP, pending.message_id)
        pipe.xdel(SNAPSHOTS, pending.message_id)
        pipe.publish(NOTIFY_CHANNEL, json.dumps({"type": "frame", "run_id": run_id, "step": step}))
        pipe.execute()

    def _link_next(self, run_id: str, step: int, payload: dict) -> None:
        # Frames are analysed out of order: the next snapshot's topology change may be computable only now.
        next_step = self.store.next_snapshot_step(run_id, step)
        if next_step is None:
            return
        following = self.store.frame(run_id, next_step)
        if following is not None and following["metrics"].get("bottleneck") is None:
            self.store.update_frame_metrics(run_id, next_step, {"bottleneck": topology_change(payload, following)})

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.intake(block_ms=500)
                while self.analyse_next() and not stopping.is_set():
                    self.intake(block_ms=None)  # newcomers jump the queue: the live view stays live
            except redis.ConnectionError:
                log.warning("redis unreachable; retrying")
                stopping.wait(1.0)


def _stream_order(message_id: bytes) -> tuple[int, int]:
    millis, _, seq = message_id.partition(b"-")
    return int(millis), int(seq or 0)


def run_analyser(settings: Settings, redis_url: str, slot: int = 0) -> None:
    import signal

    os.environ.setdefault("NUMBA_CACHE_DIR", str(settings.numba_cache_dir.resolve()))
    from backend import embedding

    consumer = settings.consumer_name or f"analyser-{socket.gethostname()}-{slot}"
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    # Pay numba's JIT once per process, in the background: clouds in R^2/R^3 (no UMAP) are analysed meanwhile.
    threading.Thread(target=embedding.warm_up, name="umap-warm-up", daemon=True).start()
    analyser = Analyser(redis.Redis.from_url(redis_url), Store(settings.db_path), consumer, settings.claim_idle_ms)
    log.info("analyser %s ready", consumer)
    analyser.run(stopping)
