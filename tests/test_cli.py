"""`topowatch up` as a user runs it: ready line, clean Ctrl-C, and everything back after a restart."""

import os
import signal
import subprocess
import sys

import requests

from tests.conftest import post_run, start_process, stop_process, wait_for, wait_status
from topowatch.redis_server import free_port


def descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = open(f"/proc/{pid}/stat").read().split()
    return stat[2] != "Z"


def test_up_stops_cleanly_and_a_restart_shows_earlier_runs(tmp_path):
    api_port, ui_port = free_port(), free_port()
    env = dict(os.environ) | {"TOPOWATCH_STATE_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    args = ["up", "--api-port", str(api_port), "--ui-port", str(ui_port)]
    api = f"http://127.0.0.1:{api_port}"
    log = tmp_path / "up.log"

    up = start_process(args, env, log)
    try:
        wait_for(lambda: "topowatch: ready" in log.read_text(), 180, what="the ready line")
        text = log.read_text()
        assert f"http://127.0.0.1:{ui_port}/" in text and f"{api}/docs" in text and "(embedded)" in text
        second = subprocess.run([sys.executable, "-m", "topowatch.cli", *args], env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode != 0 and "already uses" in second.stderr  # one `up` per state directory

        run_id = post_run(api, preset="figure-eight", epochs=1, snapshot_every=7, sharpness_every=0)
        wait_status(api, run_id, ("finished",))
        wait_for(lambda: requests.get(f"{api}/api/runs/{run_id}", timeout=5).json()["frames"] == 5, 60,
                 what="frames")
        children = descendants(up.pid)
        assert len(children) >= 5  # redis, api, analyser, worker, ui
        training = post_run(api, preset="figure-eight", epochs=2000, snapshot_every=50, sharpness_every=0)
        wait_status(api, training, ("running",))
    finally:
        exit_code = stop_process(up, signal.SIGINT)
    assert exit_code == 0
    assert "stopped" in log.read_text()
    orphans = [open(f"/proc/{pid}/cmdline").read().replace("\0", " ") for pid in children if alive(pid)]
    assert not orphans, f"orphan processes after Ctrl-C: {orphans}"
    assert not (tmp_path / "up.lock").exists()

    again = start_process(args, env, log)
    try:
        wait_for(lambda: log.read_text().count("topowatch: ready") == 2, 180, what="the second ready line")
        run = requests.get(f"{api}/api/runs/{run_id}", timeout=5).json()
        assert run["status"] == "finished" and run["frames"] == 5
        cut_short = requests.get(f"{api}/api/runs/{training}", timeout=5).json()
        assert cut_short["status"] == "stopped"
        assert cut_short["error"] == "its worker was shut down (Ctrl-C or SIGTERM); every step up to here is kept"
        frame = requests.get(f"{api}/api/runs/{run_id}/frames/14", timeout=5).json()
        assert len(frame["coords"]["raw"]) == 1024
    finally:
        stop_process(again, signal.SIGINT)


def test_up_refuses_a_busy_port_with_a_clear_message(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "topowatch.cli", "up", "--api-port", str(port),
                                 "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"port {port} for the API is in use" in result.stderr and "--api-port" in result.stderr
    assert not (tmp_path / "up.lock").exists()


def test_a_port_whose_connections_linger_in_time_wait_counts_as_free():
    """Just after Ctrl-C the dashboard's port holds TIME_WAIT connections; `up` must not call it busy."""
    import socket

    from topowatch.cli import _port_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first, so its end of the connection lingers in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert _port_free("127.0.0.1", port)
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        assert not _port_free("127.0.0.1", port)  # a listening server still counts as busy
