"""The durable store: SQLite on disk, the system of record for runs, raw snapshots and analysed frames.

Every process (API, analysers, event recorder) opens its own connection; WAL mode lets readers and one
writer at a time work side by side. Frames are written with INSERT OR IGNORE on (run_id, step), so a
snapshot redelivered after a crash is analysed and stored exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from topowatch.wire import NEURON_DTYPE

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    preset TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    steps_done INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    device TEXT,
    neuron_dim INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    shape TEXT NOT NULL,
    neurons BLOB NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS frames (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (run_id, step)
);
"""

TERMINAL_STATUSES = ("finished", "diverged", "failed", "stopped")
# The recorder's verdict when a worker's heartbeat expires; the worker's own later word overrides it, since a
# starved but living worker may still finish the run.
LOST_WORKER = "the worker stopped responding (no heartbeat)"


@dataclass(frozen=True)
class StoredSnapshot:
    step: int
    epoch: int
    neurons: np.ndarray
    metrics: dict[str, Any]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- runs -----------------------------------------------------------------------------------
    def create_run(self, run_id: str, preset: str, config: dict[str, Any], total_steps: int) -> None:
        self._db.execute(
            "INSERT INTO runs (id, preset, config, status, total_steps, created_at) VALUES (?, ?, ?, 'queued', ?, ?)",
            (run_id, preset, json.dumps(config), total_steps, time.time()),
        )

    def run_exists(self, run_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute(f"{_RUN_QUERY} WHERE r.id = ?", (run_id,)).fetchone()
        return _run_dict(row) if row else None

    def list_runs(self) -> list[dict[str, Any]]:
        rows = self._db.execute(f"{_RUN_QUERY} ORDER BY r.created_at DESC, r.id").fetchall()
        return [_run_dict(row) for row in rows]

    def run_config(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row["config"]) if row else None

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        steps_done: int | None = None,
        device: str | None = None,
        neuron_dim: int | None = None,
        total_steps: int | None = None,
    ) -> bool:
        """Apply a lifecycle change; a run that already ended keeps its final status (except a presumed-lost
        worker's). Returns whether it changed."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT status, error FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return False
            presumed_lost = row["status"] == "failed" and row["error"] == LOST_WORKER
            if row["status"] in TERMINAL_STATUSES and not presumed_lost:
                return False
            db.execute(
                """UPDATE runs SET status = ?, error = CASE WHEN ? THEN ? ELSE COALESCE(?, error) END,
                       steps_done = MAX(steps_done, COALESCE(?, steps_done)),
                       device = COALESCE(?, device), neuron_dim = COALESCE(?, neuron_dim),
                       total_steps = COALESCE(?, total_steps),
                       started_at = CASE WHEN ? = 'running' THEN COALESCE(started_at, ?) ELSE started_at END,
                       finished_at = CASE WHEN ? IN ('finished', 'diverged', 'failed', 'stopped') THEN ?
                                          WHEN ? = 'running' THEN NULL ELSE finished_at END
                   WHERE id = ?""",
                (status, presumed_lost, error, error, steps_done, device, neuron_dim, total_steps, status, now, status,
                 now, status, run_id),
            )
        return True

    def running_run_ids(self) -> list[str]:
        return [r["id"] for r in self._db.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()]

    def presumed_lost_run_ids(self) -> list[str]:
        rows = self._db.execute("SELECT id FROM runs WHERE status = 'failed' AND error = ?", (LOST_WORKER,))
        return [r["id"] for r in rows.fetchall()]

    # --- raw snapshots --------------------------------------------------------------------------
    def put_snapshot(self, run_id: str, step: int, epoch: int, neurons: np.ndarray, metrics: dict[str, Any]) -> None:
        data = np.ascontiguousarray(neurons, dtype=NEURON_DTYPE)
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO snapshots (run_id, step, epoch, shape, neurons, metrics) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, step, epoch, json.dumps(list(data.shape)), data.tobytes(), json.dumps(metrics)),
            )
            db.execute("UPDATE runs SET steps_done = MAX(steps_done, ?) WHERE id = ?", (step, run_id))

    def get_snapshot(self, run_id: str, step: int) -> StoredSnapshot | None:
        row = self._db.execute("SELECT * FROM snapshots WHERE run_id = ? AND step = ?", (run_id, step)).fetchone()
        return _snapshot(row) if row else None

    def previous_snapshot(self, run_id: str, step: int) -> StoredSnapshot | None:
        row = self._db.execute(
            "SELECT * FROM snapshots WHERE run_id = ? AND step < ? ORDER BY step DESC LIMIT 1", (run_id, step)
        ).fetchone()
        return _snapshot(row) if row else None

    def iter_snapshots(self, run_id: str, chunk: int = 64) -> Iterator[StoredSnapshot]:
        start = 0
        while True:
            rows = self._db.execute(
                "SELECT * FROM snapshots WHERE run_id = ? AND step >= ? ORDER BY step LIMIT ?", (run_id, start, chunk)
            ).fetchall()
            yield from (_snapshot(row) for row in rows)
            if len(rows) < chunk:
                return
            start = rows[-1]["step"] + 1

    def next_snapshot_step(self, run_id: str, step: int) -> int | None:
        row = self._db.execute(
            "SELECT step FROM snapshots WHERE run_id = ? AND step > ? ORDER BY step LIMIT 1", (run_id, step)
        ).fetchone()
        return int(row["step"]) if row else None

    # --- frames ---------------------------------------------------------------------------------
    def put_frame(self, run_id: str, step: int, epoch: int, metrics: dict[str, Any], payload: dict[str, Any]) -> bool:
        """Store an analysed frame once; returns False when it was already there (a redelivery)."""
        blob = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 3)
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO frames (run_id, step, epoch, metrics, payload) VALUES (?, ?, ?, ?, ?)",
            (run_id, step, epoch, json.dumps(metrics), blob),
        )
        return cursor.rowcount == 1

    def has_frame(self, run_id: str, step: int) -> bool:
        return self._db.execute("SELECT 1 FROM frames WHERE run_id = ? AND step = ?", (run_id, step)).fetchone() is not None

    def update_frame_metrics(self, run_id: str, step: int, updates: dict[str, Any]) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT metrics FROM frames WHERE run_id = ? AND step = ?", (run_id, step)).fetchone()
            if row is None:
                return
            metrics = json.loads(row["metrics"]) | updates
            db.execute("UPDATE frames SET metrics = ? WHERE run_id = ? AND step = ?", (json.dumps(metrics), run_id, step))

    def frame_index(self, run_id: str, start: int = 0, end: int = 2**62) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT step, epoch, metrics FROM frames WHERE run_id = ? AND step BETWEEN ? AND ? ORDER BY step",
            (run_id, start, end),
        ).fetchall()
        return [{"step": r["step"], "epoch": r["epoch"], "metrics": json.loads(r["metrics"])} for r in rows]

    def first_frame_above(self, run_id: str, metric: str, threshold: float) -> dict[str, Any] | None:
        """The earliest index entry whose ``metric`` exceeds ``threshold`` (searched inside SQLite)."""
        row = self._db.execute(
            "SELECT step, epoch, metrics FROM frames WHERE run_id = ? AND json_extract(metrics, ?) > ? "
            "ORDER BY step LIMIT 1", (run_id, f"$.{metric}", threshold)).fetchone()
        return None if row is None else {"step": row["step"], "epoch": row["epoch"], "metrics": json.loads(row["metrics"])}

    def first_step_differing(self, run_id: str, values: dict[str, Any]) -> int | None:
        """The earliest analysed step where any of these metrics differs from the given value (null included)."""
        differs = " OR ".join("json_extract(metrics, ?) IS NOT ?" for _ in values)
        params = [p for key, value in values.items() for p in (f"$.{key}", value)]
        row = self._db.execute(f"SELECT MIN(step) FROM frames WHERE run_id = ? AND ({differs})",
                               (run_id, *params)).fetchone()
        return row[0]

    def frames(self, run_id: str, start: int, end: int, limit: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM frames WHERE run_id = ? AND step BETWEEN ? AND ? ORDER BY step LIMIT ?",
            (run_id, start, end, limit),
        ).fetchall()
        return [_frame(r) for r in rows]

    def iter_frames(self, run_id: str, chunk: int = 64) -> Iterator[dict[str, Any]]:
        """All frames in step order, read a chunk at a time so memory stays flat however long the run."""
        start = 0
        while True:
            batch = self.frames(run_id, start, 2**62, chunk)
            yield from batch
            if len(batch) < chunk:
                return
            start = batch[-1]["step"] + 1

    def frame(self, run_id: str, step: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM frames WHERE run_id = ? AND step = ?", (run_id, step)).fetchone()
        return _frame(row) if row else None

    def nearest_earlier_frame(self, run_id: str, step: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM frames WHERE run_id = ? AND step < ? ORDER BY step DESC LIMIT 1", (run_id, step)
        ).fetchone()
        return _frame(row) if row else None


_RUN_QUERY = """
SELECT r.*,
       (SELECT COUNT(*) FROM frames f WHERE f.run_id = r.id) AS frame_count,
       (SELECT COUNT(*) FROM snapshots s WHERE s.run_id = r.id) AS snapshot_count
FROM runs r
"""


def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
    config = json.loads(row["config"])
    return {
        "id": row["id"],
        "preset": row["preset"],
        "config": config,
        "status": row["status"],
        "error": row["error"],
        "steps_done": row["steps_done"],
        "total_steps": row["total_steps"],
        "frames": row["frame_count"],
        "snapshots": row["snapshot_count"],
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "device": row["device"],
        "neuron_dim": row["neuron_dim"],
        "width": config.get("width"),
    }


def _snapshot(row: sqlite3.Row) -> StoredSnapshot:
    shape = json.loads(row["shape"])
    neurons = np.frombuffer(row["neurons"], dtype=NEURON_DTYPE).reshape(shape)
    return StoredSnapshot(step=row["step"], epoch=row["epoch"], neurons=neurons, metrics=json.loads(row["metrics"]))


def _frame(row: sqlite3.Row) -> dict[str, Any]:
    payload = json.loads(zlib.decompress(row["payload"]))
    return {"run_id": row["run_id"], "step": row["step"], "epoch": row["epoch"], "metrics": json.loads(row["metrics"])} | payload
