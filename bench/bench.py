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
from collections import deque
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
from worker.publisher import Publisher  # noqa: E402
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
    config = build_config({"preset": "figure-eight", "sharpness_every": 0} | config_overrides)
    started = time.perf_counter()
    outcome = train(config, sink, torch.device("cpu"))
    return time.perf_counter() - started, outcome.step


class QueueOnlySink(NullSink):
    """What the training loop itself pays per snapshot: the copy and a queue append (no Redis)."""

    def __init__(self) -> None:
        self.queue: deque = deque(maxlen=1)

    def snapshot(self, step: int, epoch: int, neurons: np.ndarray, metrics: dict) -> None:
        self.queue.append((step, epoch, neurons, metrics))


def bench_publishing(client: redis.Redis, epochs: int, repeats: int) -> None:
    plain, queued, published = [], [], []
    timed_train({"epochs": 1, "snapshot_every": 1}, NullSink())  # warm-up: allocator, data, thread pool
    for i in range(repeats):
        seconds, steps = timed_train({"epochs": epochs, "snapshot_every": 10**9}, NullSink())
        plain.append(steps / seconds)
        seconds, steps = timed_train({"epochs": epochs, "snapshot_every": 1}, QueueOnlySink())
        queued.append(steps / seconds)
        publisher = Publisher(client, f"bench-{i}", max_backlog=10**9)
        seconds, steps = timed_train({"epochs": epochs, "snapshot_every": 1}, publisher)
        publisher.flush()
        publisher.close()
        published.append(steps / seconds)
        client.delete("topowatch:snapshots")
    a, q, b = statistics.median(plain), statistics.median(queued), statistics.median(published)
    print(f"training figure-eight (1024 x 2, batch 128), {steps} steps, median of {repeats}:")
    print(f"  without snapshots                        {a:7.0f} steps/s")
    print(f"  snapshot every step, copy + queue only   {q:7.0f} steps/s  ({100 * (a / q - 1):5.1f} % slower)")
    print(f"  snapshot every step, published to Redis  {b:7.0f} steps/s  ({100 * (a / b - 1):5.1f} % slower;"
          f" target <= 5 %)")
    print("  (the publisher thread and redis-server share this machine's cores with training)")


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


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores\n")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_embedded_redis(Path(tmp))
        try:
            bench_publishing(redis.Redis.from_url(server.url), epochs=40, repeats=5)
        finally:
            server.stop()
    print()
    started = time.perf_counter()
    embedding.warm_up()
    print(f"one-time UMAP warm-up: {time.perf_counter() - started:.1f} s")
    fig8 = bench_analysis("figure-eight", {"epochs": 1, "snapshot_every": 1}, frames=20)
    digits = bench_analysis("digits", {"epochs": 2, "snapshot_every": 1}, frames=15)
    print(f"analysis per frame, figure-eight 1024 x 2: median {statistics.median(fig8):6.1f} ms, "
          f"max {max(fig8):6.1f} ms  (target <= 50 ms)")
    print(f"analysis per frame, digits 256 x 74:       median {statistics.median(digits):6.1f} ms, "
          f"max {max(digits):6.1f} ms  (target <= 300 ms)")
    print()
    bench_health_latency()


if __name__ == "__main__":
    main()
