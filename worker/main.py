"""The worker process: takes run requests from the Redis queue, trains, publishes, reports the outcome."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback

import redis
import torch
from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from topowatch.settings import Settings
from topowatch.wire import REQUESTS, WORKER_GROUP, RunRequest, WireError, stop_key
from worker.data import DataError
from worker.presets import RunConfig
from worker.publisher import Publisher
from worker.relay import SnapshotRelay
from worker.train import train

log = logging.getLogger("topowatch.worker")


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def limit_threads(setting: int) -> int:
    """Give training its CPU threads: torch's pool and numpy's BLAS (whose idle threads otherwise spin on the
    core the relay and Redis need). 0: one per core but one."""
    count = setting if setting > 0 else max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(count)
    threadpool_limits(count)
    return count


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def run_one(client: redis.Redis, relay: SnapshotRelay, request: RunRequest, device: torch.device,
            active: dict[str, Publisher]) -> None:
    publisher = Publisher(client, relay, request.run_id)
    active[request.run_id] = publisher
    try:
        if client.exists(stop_key(request.run_id)):
            publisher.event("stopped", 0, "on request, before it started")
            return
        try:
            config = RunConfig.model_validate(request.config)
        except ValidationError as exc:
            publisher.event("failed", 0, f"invalid run config: {exc}")
            return

        def started(total_steps: int, neuron_dim: int) -> None:
            publisher.event("started", 0, device=str(device), total_steps=total_steps, neuron_dim=neuron_dim,
                            worker=socket.gethostname())

        try:
            outcome = train(config, publisher, device, on_start=started)
        except DataError as exc:
            publisher.event("failed", 0, str(exc))
            return
        except Exception as exc:  # a crash in training is reported on the run, the worker lives on
            log.error("run %s failed:\n%s", request.run_id, traceback.format_exc())
            publisher.event("failed", 0, f"{type(exc).__name__}: {exc}")
            return
        publisher.event(outcome.status, outcome.step,
                        publisher.stop_reason if outcome.status == "stopped" else outcome.message)
    finally:
        active.pop(request.run_id, None)
        publisher.close()


def run_worker(settings: Settings, redis_url: str, consumer: str | None = None) -> None:
    client = redis.Redis.from_url(redis_url)
    ensure_group(client, REQUESTS, WORKER_GROUP)
    consumer = consumer or settings.consumer_name or f"worker-{socket.gethostname()}-{os.getpid()}"
    device = pick_device(settings.device)
    limit_threads(settings.training_threads)
    stopping = threading.Event()
    active: dict[str, Publisher] = {}

    def shut_down(*_: object) -> None:
        # The run in progress stops between two steps and keeps what it published.
        stopping.set()
        for publisher in list(active.values()):
            publisher.request_stop("its worker was shut down (Ctrl-C or SIGTERM); every step up to here is kept")

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    relay = SnapshotRelay(redis_url, settings.max_backlog)
    log.info("worker %s on %s waiting for runs", consumer, device)
    try:
        serve(client, relay, consumer, device, stopping, active)
    finally:
        relay.close()


def serve(client: redis.Redis, relay: SnapshotRelay, consumer: str, device: torch.device,
          stopping: threading.Event, active: dict[str, Publisher]) -> None:
    while not stopping.is_set():
        try:
            reply = client.xreadgroup(WORKER_GROUP, consumer, {REQUESTS: ">"}, count=1, block=500)
        except redis.ConnectionError:
            log.warning("redis unreachable; retrying")
            stopping.wait(1.0)
            continue
        for _, messages in reply or []:
            for message_id, fields in messages:
                # Acknowledged when taken: a request is never run twice, even if this worker dies mid-run
                # (the recorder then marks the run failed when its heartbeat stops).
                client.xack(REQUESTS, WORKER_GROUP, message_id)
                client.xdel(REQUESTS, message_id)
                try:
                    request = RunRequest.decode(fields)
                except WireError as exc:
                    log.error("dropping malformed run request %s: %s", message_id, exc)
                    continue
                relay.ensure_running()  # it may have given up on Redis during an earlier run
                log.info("run %s started", request.run_id)
                run_one(client, relay, request, device, active)
                log.info("run %s ended", request.run_id)
