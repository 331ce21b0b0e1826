"""Kill the analyser process mid-run, start it again: every snapshot ends up analysed exactly once."""

import os
import signal

import redis
import requests

from tests.conftest import post_run, start_process, stop_process, wait_for, wait_status
from topowatch.redis_server import free_port
from topowatch.wire import ANALYSER_GROUP, SNAPSHOTS


def test_killed_analyser_loses_nothing(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    api_port = free_port()
    env = dict(os.environ) | {"TOPOWATCH_STATE_DIR": str(tmp_path), "TOPOWATCH_REDIS_URL": redis_url,
                              "TOPOWATCH_API_PORT": str(api_port), "TOPOWATCH_ANALYSERS": "0"}
    api = f"http://127.0.0.1:{api_port}"
    processes = {
        "api": start_process(["api"], env, tmp_path / "api.log"),
        "worker": start_process(["worker"], env, tmp_path / "worker.log"),
        "analyser": start_process(["analyser"], env, tmp_path / "analyser.log"),
    }
    try:
        def healthy() -> bool:
            try:
                return requests.get(f"{api}/api/health", timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(healthy, 60, what="the API")
        run_id = post_run(api, preset="figure-eight", width=256, epochs=4, snapshot_every=2, sharpness_every=0)
        expected = 1 + 4 * 28 // 2  # step 0, then every 2nd of 112 steps
        frames = lambda: requests.get(f"{api}/api/runs/{run_id}/frames", timeout=5).json()["frames"]  # noqa: E731
        wait_for(lambda: len(frames()) >= 3, 120, what="the first frames")
        processes["analyser"].send_signal(signal.SIGKILL)  # no chance to clean up
        processes["analyser"].wait()
        analysed_before = len(frames())
        wait_status(api, run_id, ("finished",), timeout=120)
        assert len(frames()) == analysed_before  # nothing analyses while the analyser is down
        assert client.xlen(SNAPSHOTS) > 0  # the backlog waits in the stream, unacknowledged
        processes["analyser"] = start_process(["analyser"], env, tmp_path / "analyser.log")
        wait_for(lambda: len(frames()) == expected, 180, what="the back-fill after the restart")
        steps = [f["step"] for f in frames()]
        assert steps == [0, *range(2, 113, 2)] and len(set(steps)) == len(steps)
        run = requests.get(f"{api}/api/runs/{run_id}", timeout=5).json()
        assert run["snapshots"] == run["frames"] == expected
        wait_for(lambda: client.xpending(SNAPSHOTS, ANALYSER_GROUP)["pending"] == 0, 30, what="all acknowledged")
        assert client.xlen(SNAPSHOTS) == 0
    finally:
        for process in processes.values():
            stop_process(process, signal.SIGTERM)
