"""Side-by-side measurements, printed as figures and ratios (never asserted in tests).

1. figure-eight training steps/s without publishing vs publishing a snapshot every step through a real
   (embedded) Redis; runs alternate so both see the same machine state.
2. analysis milliseconds per frame, after the one-time warm-up, for figure-eight (1024 x 2) and digits
   (256 x 74, PCA and UMAP) frames taken from real training snapshots.
3. /api/health latency, idle and while an analyser is busy with digits frames.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".topowatch" / "numba-cache"))

import numpy as np  # noqa: E402
import redis  # noqa: E402
import torch  # noqa: E402

from backend import embedding  # noqa: E402
from backend.analysis import Reference, analyse  # noqa: E402
from topowatch.redis_server import start_embedded_redis  # noqa: E402
from worker.presets import build_config  # noqa: E402
from topowatch.settings import get_settings  # noqa: E402
from topowatch.wire import SNAPSHOTS  # noqa: E402
from worker.main import limit_threads  # noqa: E402
from worker.publisher import Publisher  # noqa: E402
from worker.relay import SnapshotRelay  # noqa: E402
from worker.train import train  # noqa: E402


class NullSink:
    def snapshot(self, step: int, epoch: int, neurons: np.ndarray, metrics: dict) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class CollectSink(NullSink):
    def __init__(self) -> None:
        self.snapshots: list[tuple[int, np.ndarray, dict]] = []

    def snapshot(self, step: int, epoch: int, neurons: np.ndarray, metrics: dict) -> None:
        self.snapshots.append((step, neurons, metrics))


def timed_train(config_overrides: dict, sink: object) -> tuple[float, int]:
    config = build_config({"preset": "figure-eight"} | config_overrides)
    started = time.perf_counter()
    outcome = train(config, sink, torch.device("cpu"))
    return time.perf_counter() - started, outcome.step


def bench_publishing(redis_url: str, label: str, overrides: dict, rounds: int) -> None:
    """Rounds of three figure-eight runs in alternating order; each round's ratios compare runs made a
    second apart, so the machine's drift (this VM's speed wanders by +-10 %) cancels in their median."""
    client = redis.Redis.from_url(redis_url)
    relay = SnapshotRelay(redis_url, max_backlog=10**9)

    def plain() -> float:
        seconds, steps = timed_train(overrides | {"snapshot_every": 10**9}, NullSink())
        return steps / seconds

    def taken() -> float:  # snapshots copied out of the model every step, then dropped
        seconds, steps = timed_train(overrides | {"snapshot_every": 1}, NullSink())
        return steps / seconds

    def published() -> float:
        publisher = Publisher(client, relay, "bench")
        seconds, steps = timed_train(overrides | {"snapshot_every": 1}, publisher)
        publisher.flush()
        publisher.close()
        client.delete(SNAPSHOTS)
        return steps / seconds

    published()  # warm-up: allocator, data, the relay's connection
    rates: dict[str, list[float]] = {"plain": [], "taken": [], "published": []}
    runs = {"plain": plain, "taken": taken, "published": published}
    for i in range(rounds):
        for name in list(runs) if i % 2 == 0 else reversed(list(runs)):
            rates[name].append(runs[name]())
    relay.close()

    def line(title: str, name: str, note: str = "") -> str:
        rate = statistics.median(rates[name])
        slower = 100 * statistics.median(p / q - 1 for p, q in zip(rates["plain"], rates[name]))
        return f"  {title:42s} {rate:6.0f} steps/s" + (f"  ({slower:4.1f} % slower{note})" if name != "plain" else "")

    steps = overrides["epochs"] * 28
    print(f"figure-eight (1024 x 2, batch 128), {label}; {steps} steps a run, {rounds} rounds:")
    print(line("without snapshots", "plain"))
    print(line("snapshot every step, taken, not sent", "taken"))
    print(line("snapshot every step, published to Redis", "published", "; target <= 5 %"))


def bench_analysis(preset: str, overrides: dict, frames: int) -> list[float]:
    sink = CollectSink()
    config = build_config({"preset": preset, "sharpness_every": 0} | overrides)
    train(config, sink, torch.device("cpu"))
    reference = Reference.from_step0(sink.snapshots[0][1])
    previous, previous_umap, times = None, None, []
    for step, neurons, metrics in sink.snapshots[: frames + 1]:
        started = time.perf_counter()
        frame = analyse(neurons, step, config.lr, metrics, reference, previous, previous_umap)
        times.append(1000 * (time.perf_counter() - started))
        previous = (step, neurons)
        if "umap" in frame.payload["coords"]:
            previous_umap = np.asarray(frame.payload["coords"]["umap"])
    return times[1:]  # the first frame has no predecessor and initialises UMAP from scratch


def bench_health_latency() -> None:
    """/api/health latency idle vs while the analyser chews digits frames (analysis runs in its own process)."""
    import signal
    import subprocess

    import requests

    from topowatch.redis_server import free_port

    with tempfile.TemporaryDirectory() as state:
        api_port, ui_port = free_port(), free_port()
        env = dict(os.environ) | {"TOPOWATCH_STATE_DIR": state}
        env.pop("REDIS_URL", None)
        up = subprocess.Popen([sys.executable, "-m", "topowatch.cli", "up", "--api-port", str(api_port),
                               "--ui-port", str(ui_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              cwd=ROOT, text=True)
        try:
            for line in up.stdout:
                if "topowatch: ready" in line:
                    break
            api = f"http://127.0.0.1:{api_port}"

            def sample(n: int) -> list[float]:
                out = []
                for _ in range(n):
                    started = time.perf_counter()
                    requests.get(f"{api}/api/health", timeout=5).raise_for_status()
                    out.append(1000 * (time.perf_counter() - started))
                    time.sleep(0.02)
                return out

            idle = sample(50)
            requests.post(f"{api}/api/runs", json={"preset": "digits", "epochs": 3, "snapshot_every": 1},
                          timeout=5).raise_for_status()
            time.sleep(3)  # let snapshots pile up so the analyser is busy
            busy = sample(100)
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(60)
    for name, values in (("idle", idle), ("analysing", busy)):
        values.sort()
        print(f"/api/health {name:9s}: median {statistics.median(values):5.1f} ms, "
              f"p99 {values[int(0.99 * (len(values) - 1))]:5.1f} ms")


def publishing() -> None:
    threads = limit_threads(get_settings().training_threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {threads} training thread(s) as the worker uses")
    print("(ratios: median over rounds of each round's ratio; the relay process and redis-server share the machine)")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_embedded_redis(Path(tmp))
        try:
            bench_publishing(server.url, "as the preset trains (test loss twice and sharpness once an epoch)",
                             {"epochs": 10}, rounds=30)
            bench_publishing(server.url, "training steps alone (sharpness off)",
                             {"epochs": 10, "sharpness_every": 0}, rounds=60)
        finally:
            server.stop()


def analysis() -> None:
    started = time.perf_counter()
    embedding.warm_up()
    print(f"one-time UMAP warm-up: {time.perf_counter() - started:.1f} s")
    fig8 = bench_analysis("figure-eight", {"epochs": 1, "snapshot_every": 1}, frames=20)
    digits = bench_analysis("digits", {"epochs": 2, "snapshot_every": 1}, frames=15)
    print(f"analysis per frame, figure-eight 1024 x 2: median {statistics.median(fig8):6.1f} ms, "
          f"max {max(fig8):6.1f} ms  (target <= 50 ms)")
    print(f"analysis per frame, digits 256 x 74:       median {statistics.median(digits):6.1f} ms, "
          f"max {max(digits):6.1f} ms  (target <= 300 ms)")


SECTIONS = {"publishing": publishing, "analysis": analysis, "health": bench_health_latency}


def main() -> None:
    """``bench.py [section ...]``: all sections by default."""
    for i, name in enumerate(sys.argv[1:] or SECTIONS):
        if name not in SECTIONS:
            sys.exit(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        if i:
            print()
        SECTIONS[name]()


if __name__ == "__main__":
    main()
