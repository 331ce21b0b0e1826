"""The wire format between worker and backend, defined once and imported by both sides.

Three Redis streams carry everything:

* ``REQUESTS``: run requests (JSON config) that workers take through a consumer group;
* ``SNAPSHOTS``: neuron snapshots, the matrix as raw little-endian float32 bytes plus a small JSON header;
* ``EVENTS``: run lifecycle events (started, finished, failed, diverged, stopped).

Nothing is pickled: a message is a flat map of UTF-8 strings and one bytes field, so any language can read it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1

REQUESTS = "topowatch:requests"
SNAPSHOTS = "topowatch:snapshots"
EVENTS = "topowatch:events"
DEAD_LETTER = "topowatch:dead-letter"

WORKER_GROUP = "workers"
ANALYSER_GROUP = "analysers"
EVENTS_GROUP = "recorders"

NEURON_DTYPE = "<f4"
EVENT_KINDS = ("started", "finished", "failed", "diverged", "stopped")

# Metrics a snapshot may carry; anything else in a header is rejected so typos surface at once.
SNAPSHOT_METRICS = (
    "train_loss",
    "test_loss",
    "accuracy",
    "lr",
    "sharpness",
    "sharpness_kind",
    "sharpness_hvps",
)


class WireError(ValueError):
    """A stream message that does not follow this module's format."""


def stop_key(run_id: str) -> str:
    """Redis key whose presence asks the worker running ``run_id`` to stop."""
    return f"topowatch:stop:{run_id}"


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    config: dict[str, Any]

    def encode(self) -> dict[str, str]:
        return {"v": str(PROTOCOL_VERSION), "run_id": self.run_id, "config": json.dumps(self.config)}

    @staticmethod
    def decode(fields: dict[bytes, bytes]) -> RunRequest:
        text = _text_fields(fields, ("run_id", "config"))
        try:
            config = json.loads(text["config"])
        except json.JSONDecodeError as exc:
            raise WireError(f"run request config is not JSON: {exc}") from exc
        if not isinstance(config, dict):
            raise WireError("run request config must be a JSON object")
        return RunRequest(run_id=text["run_id"], config=config)


@dataclass(frozen=True)
class Snapshot:
    run_id: str
    step: int
    epoch: int
    neurons: np.ndarray  # (N, D) float32
    metrics: dict[str, float | int | str | None] = field(default_factory=dict)

    def encode(self) -> dict[str, str | bytes]:
        neurons = np.ascontiguousarray(self.neurons, dtype=NEURON_DTYPE)
        header = {
            "dtype": NEURON_DTYPE,
            "shape": list(neurons.shape),
            "step": self.step,
            "epoch": self.epoch,
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
        }
        return {
            "v": str(PROTOCOL_VERSION),
            "run_id": self.run_id,
            "header": json.dumps(header, allow_nan=False),
            "data": neurons.tobytes(),
        }

    @staticmethod
    def decode(fields: dict[bytes, bytes]) -> Snapshot:
        text = _text_fields(fields, ("run_id", "header"))
        data = fields.get(b"data")
        if data is None:
            raise WireError("snapshot has no data field")
        try:
            header = json.loads(text["header"])
        except json.JSONDecodeError as exc:
            raise WireError(f"snapshot header is not JSON: {exc}") from exc
        if not isinstance(header, dict):
            raise WireError("snapshot header must be a JSON object")
        if header.get("dtype") != NEURON_DTYPE:
            raise WireError(f"snapshot dtype must be {NEURON_DTYPE!r}, got {header.get('dtype')!r}")
        shape = header.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) and s > 0 for s in shape)):
            raise WireError(f"snapshot shape must be [N, D] with positive integers, got {shape!r}")
        expected = shape[0] * shape[1] * 4
        if len(data) != expected:
            raise WireError(f"snapshot data has {len(data)} bytes, shape {shape} needs {expected}")
        step, epoch = header.get("step"), header.get("epoch")
        if not (isinstance(step, int) and step >= 0 and isinstance(epoch, int) and epoch >= 0):
            raise WireError("snapshot step and epoch must be non-negative integers")
        metrics = header.get("metrics", {})
        if not isinstance(metrics, dict) or set(metrics) - set(SNAPSHOT_METRICS):
            raise WireError(f"snapshot metrics must be a map with keys among {SNAPSHOT_METRICS}")
        neurons = np.frombuffer(data, dtype=NEURON_DTYPE).reshape(shape)
        return Snapshot(run_id=text["run_id"], step=step, epoch=epoch, neurons=neurons, metrics=metrics)


@dataclass(frozen=True)
class Event:
    run_id: str
    kind: str
    step: int = 0
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> dict[str, str]:
        return {
            "v": str(PROTOCOL_VERSION),
            "run_id": self.run_id,
            "kind": self.kind,
            "step": str(self.step),
            "message": self.message,
            "info": json.dumps(self.info),
        }

    @staticmethod
    def decode(fields: dict[bytes, bytes]) -> Event:
        text = _text_fields(fields, ("run_id", "kind", "step"))
        if text["kind"] not in EVENT_KINDS:
            raise WireError(f"unknown event kind {text['kind']!r}")
        try:
            step = int(text["step"])
            info = json.loads(fields.get(b"info", b"{}").decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise WireError(f"bad event step or info: {exc}") from exc
        message = fields.get(b"message", b"").decode("utf-8", errors="replace")
        return Event(run_id=text["run_id"], kind=text["kind"], step=step, message=message, info=info)


def _text_fields(fields: dict[bytes, bytes], names: tuple[str, ...]) -> dict[str, str]:
    version = fields.get(b"v")
    if version != str(PROTOCOL_VERSION).encode():
        raise WireError(f"unsupported protocol version {version!r}")
    out = {}
    for name in names:
        raw = fields.get(name.encode())
        if raw is None:
            raise WireError(f"message has no {name!r} field")
        try:
            out[name] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"field {name!r} is not UTF-8") from exc
    return out


def _json_number(value: float | int | str | None) -> float | int | str | None:
    # JSON has no NaN/inf; a non-finite metric travels as null (divergence is its own event).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
