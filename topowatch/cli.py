"""The ``topowatch`` command: ``up`` starts everything; ``api``, ``analyser``, ``worker``, ``ui`` start one part."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from topowatch.processes import die_with_parent
from topowatch.redis_server import EmbeddedRedis, RedisUnavailable, start_embedded_redis
from topowatch.settings import Settings

log = logging.getLogger("topowatch")

def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "state_dir", None):
        overrides["state_dir"] = Path(args.state_dir)
    if getattr(args, "redis_url", None):
        overrides["redis_url"] = args.redis_url
    for name in ("api_port", "ui_port", "api_url", "device", "analysers"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides) if overrides else Settings()


def _require_redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        sys.exit("this part needs a Redis: pass --redis-url or set REDIS_URL (or use `topowatch up`)")
    return settings.redis_url


def _child_env(settings: Settings, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env |= {
        "TOPOWATCH_STATE_DIR": str(settings.state_dir.resolve()),
        "TOPOWATCH_REDIS_URL": redis_url,
        "TOPOWATCH_API_PORT": str(settings.api_port),
        "TOPOWATCH_UI_PORT": str(settings.ui_port),
        "TOPOWATCH_API_URL": settings.dashboard_api_url,
        "TOPOWATCH_DEVICE": settings.device,
        "TOPOWATCH_ANALYSERS": str(settings.analysers),
        "NUMBA_CACHE_DIR": env.get("NUMBA_CACHE_DIR", str(settings.numba_cache_dir.resolve())),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    return env


def _spawn(part: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "topowatch.cli", part], env=env, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=die_with_parent)


def _wait_http(url: str, timeout: float, children: dict[str, subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, child in children.items():
            if child.poll() is not None:
                sys.exit(f"topowatch: the {name} process exited with code {child.returncode} during start-up")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _stop_children(children: dict[str, subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As the servers themselves bind: a port whose last connections linger in TIME_WAIT (just after a
        # Ctrl-C) is free to use again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def cmd_up(args: argparse.Namespace) -> None:
    settings = _settings(args)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # flock, not a pid file: the kernel drops the lock when this process ends, so it can never go stale.
    lock = open(settings.state_dir / "up.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"topowatch: another `topowatch up` already uses {settings.state_dir}")
    for name, host, port in (("API", settings.api_host, settings.api_port), ("dashboard", settings.ui_host, settings.ui_port)):
        if not _port_free(host, port):
            lock.close()
            (settings.state_dir / "up.lock").unlink(missing_ok=True)
            option = "api" if name == "API" else "ui"
            sys.exit(f"topowatch: port {port} for the {name} is in use; pick another with --{option}-port "
                     f"or TOPOWATCH_{option.upper()}_PORT")

    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if not redis_url:
        try:
            embedded = start_embedded_redis(settings.state_dir / "redis")
        except RedisUnavailable as exc:
            sys.exit(f"topowatch: cannot start the embedded Redis: {exc}")
        redis_url = embedded.url
    print(f"topowatch: redis at {redis_url}{' (embedded)' if embedded else ''}", flush=True)

    env = _child_env(settings, redis_url)
    parts = ["api", "worker", "ui"]
    children = {part: _spawn(part, env) for part in parts}
    try:
        api = f"http://{settings.api_host}:{settings.api_port}"
        ui = f"http://{settings.ui_host}:{settings.ui_port}/"
        if not (_wait_http(f"{api}/api/health", 120, children) and _wait_http(ui, 120, children)):
            sys.exit("topowatch: the API or the dashboard did not come up within 120 s")
        print(f"topowatch: API       {api}/docs", flush=True)
        print(f"topowatch: dashboard {ui}", flush=True)
        print("topowatch: ready (Ctrl-C stops everything)", flush=True)
        restarts: list[float] = []
        while not stopping:
            for part, child in list(children.items()):
                if child.poll() is not None and not stopping:
                    restarts = [t for t in restarts if time.monotonic() - t < 60] + [time.monotonic()]
                    if len(restarts) > 5:
                        sys.exit(f"topowatch: the {part} process keeps exiting ({child.returncode}); giving up")
                    print(f"topowatch: the {part} process exited ({child.returncode}); restarting it", flush=True)
                    children[part] = _spawn(part, env)
            time.sleep(0.5)
    finally:
        print("topowatch: stopping", flush=True)
        _stop_children(children)
        if embedded is not None:
            embedded.stop()
        lock.close()
        (settings.state_dir / "up.lock").unlink(missing_ok=True)
        print("topowatch: stopped", flush=True)


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from backend.api import create_app

    settings = _settings(args)
    redis_url = _require_redis_url(settings)
    env = _child_env(settings, redis_url)
    analysers = [
        subprocess.Popen([sys.executable, "-m", "topowatch.cli", "analyser", "--slot", str(slot)], env=env,
                         stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        for slot in range(settings.analysers)
    ]
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; turning them into SystemExit lets the
    # `finally` below stop the analysers instead of leaving them to outlive this process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(settings, redis_url), host=args.host or settings.api_host, port=settings.api_port,
                    log_level="warning")
    finally:
        _stop_children({f"analyser-{i}": p for i, p in enumerate(analysers)})


def cmd_analyser(args: argparse.Namespace) -> None:
    from backend.analyser import run_analyser

    settings = _settings(args)
    run_analyser(settings, _require_redis_url(settings), slot=args.slot)


def cmd_worker(args: argparse.Namespace) -> None:
    from worker.main import run_worker

    settings = _settings(args)
    run_worker(settings, _require_redis_url(settings))


def cmd_ui(args: argparse.Namespace) -> None:
    from frontend.app import main as ui_main

    settings = _settings(args)
    ui_main(host=args.host or settings.ui_host, port=settings.ui_port, api_url=settings.dashboard_api_url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="topowatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def part(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--state-dir", help="state directory (default ./.topowatch; env TOPOWATCH_STATE_DIR)")
        p.add_argument("--redis-url", help="an existing Redis (env REDIS_URL); `up` embeds one when absent")
        p.set_defaults(handler=handler)
        return p

    up = part("up", cmd_up, "start Redis (embedded unless --redis-url), the API, a worker and the dashboard")
    up.add_argument("--api-port", type=int, help="API port (default 8000; env TOPOWATCH_API_PORT)")
    up.add_argument("--ui-port", type=int, help="dashboard port (default 8050; env TOPOWATCH_UI_PORT)")
    up.add_argument("--device", choices=["auto", "cpu", "cuda"], help="training device (default auto: CUDA if present)")
    up.add_argument("--analysers", type=int, help="analysis processes (default 1; env TOPOWATCH_ANALYSERS)")
    api = part("api", cmd_api, "the HTTP API and its analysis consumer processes")
    api.add_argument("--host")
    api.add_argument("--api-port", type=int, help="API port (default 8000; env TOPOWATCH_API_PORT)")
    api.add_argument("--analysers", type=int, help="analysis processes to start beside the API (default 1)")
    analyser = part("analyser", cmd_analyser, "one analysis consumer (scale out with more)")
    analyser.add_argument("--slot", type=int, default=0, help="index giving this consumer a stable name")
    worker = part("worker", cmd_worker, "one training worker")
    worker.add_argument("--device", choices=["auto", "cpu", "cuda"])
    ui = part("ui", cmd_ui, "the dashboard")
    ui.add_argument("--host")
    ui.add_argument("--ui-port", type=int, help="dashboard port (default 8050; env TOPOWATCH_UI_PORT)")
    ui.add_argument("--api-url", help="where the dashboard finds the API")
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
