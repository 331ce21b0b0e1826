"""Shared fixtures: a real embedded Redis, and the real stack (`topowatch up`) on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".topowatch" / "numba-cache"))

from topowatch.redis_server import free_port, start_embedded_redis  # noqa: E402


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


def wait_for(predicate, timeout: float, what: str = "condition", interval: float = 0.2):
    """Poll until predicate() is truthy; returns its value (tests wait for real processes, never sleep blindly)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "topowatch.cli", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The whole product as a user starts it: `topowatch up` with its embedded Redis, on free ports."""
    state = tmp_path_factory.mktemp("state")
    api_port, ui_port = free_port(), free_port()
    env = dict(os.environ) | {"TOPOWATCH_STATE_DIR": str(state)}
    env.pop("REDIS_URL", None)
    env.pop("TOPOWATCH_REDIS_URL", None)
    process = start_process(["up", "--api-port", str(api_port), "--ui-port", str(ui_port)], env,
                            state / "up.log")
    api_url, ui_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"

    def ready() -> bool:
        assert process.poll() is None, (state / "up.log").read_text()
        return "topowatch: ready" in (state / "up.log").read_text()

    wait_for(ready, 180, what="topowatch up to print its ready line")
    yield {"api_url": api_url, "ui_url": ui_url, "state_dir": state, "process": process}
    stop_process(process)


def post_run(api_url: str, **body: object) -> str:
    response = requests.post(f"{api_url}/api/runs", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_status(api_url: str, run_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict:
    def current() -> dict | None:
        run = requests.get(f"{api_url}/api/runs/{run_id}", timeout=10).json()
        return run if run["status"] in statuses else None

    return wait_for(current, timeout, what=f"run {run_id} to reach {statuses}")
