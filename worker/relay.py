"""A child process that turns the training process's snapshots into stream messages and XADDs them.

Encoding a stream message and pushing it through redis-py costs tens of microseconds of Python per
snapshot, and a figure-eight step takes about half a millisecond; in the training process (in a thread,
sharing its GIL) that time would be taken from training. So the training process only gathers the
snapshots of the last few milliseconds and writes them to a pipe as one batch: their raw matrices back
to back after a small JSON header. This process encodes each as its wire message (topowatch.wire),
XADDs them in one pipelined round trip, and holds back while the analysers' backlog is over its cap.
A full pipe blocks the writer: memory stays bounded and no snapshot is ever dropped.

Pipe frames: ``<u32 header length> <u32 data length>`` header data. An empty header asks for a flush: the
relay answers ``k`` once everything written before it is in Redis, or ``E`` and the reason if it failed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import redis

from topowatch.processes import die_with_parent
from topowatch.wire import NEURON_DTYPE, SNAPSHOTS, Snapshot

_LENGTHS = struct.Struct("<II")
_F_SETPIPE_SZ = 1031  # Linux: a bigger pipe gives the trainer more slack before a busy relay blocks it
_PIPE_BYTES = 1 << 20
_NAP_S = 0.005
_INLINE_BYTES = 1024  # longer arguments (the neuron bytes) are sent from their own buffer
_IOV_MAX = 1000  # buffers per sendmsg; Linux allows 1024
_BACKLOG_POLL_S = 0.2
RETRY_S = 30.0  # Redis may restart (or a network blip pass) this long before the run is failed
FLUSHED = b"k"
FAILED = b"E"


def encode_batch(run_id: str, matrices: np.ndarray, items: list[tuple[int, int, dict]]) -> list[bytes | memoryview]:
    """One frame, as buffers to write one after the other: ``matrices`` (k, N, D) are the neuron matrices
    of the snapshots whose (step, epoch, metrics) are ``items``."""
    header = json.dumps({"run_id": run_id, "shape": matrices.shape[1:], "items": items}).encode()
    data = np.ascontiguousarray(matrices, dtype=NEURON_DTYPE).data
    return [_LENGTHS.pack(len(header), data.nbytes), header, data]


def decode_frames(buffer: bytearray) -> list[list[Snapshot] | None]:
    """Take every complete frame off the front of ``buffer`` (None for a flush request); a partial frame
    stays for the next read."""
    frames: list[list[Snapshot] | None] = []
    offset = 0
    while len(buffer) - offset >= _LENGTHS.size:
        header_length, data_length = _LENGTHS.unpack_from(buffer, offset)
        start = offset + _LENGTHS.size
        end = start + header_length + data_length
        if end > len(buffer):
            break
        if header_length == 0:
            frames.append(None)
        else:
            header = json.loads(bytes(buffer[start : start + header_length]))
            n, d = header["shape"]
            items = header["items"]
            matrices = np.frombuffer(bytes(buffer[start + header_length : end]), NEURON_DTYPE).reshape(len(items), n, d)
            frames.append([Snapshot(header["run_id"], step, epoch, matrices[i], metrics)
                           for i, (step, epoch, metrics) in enumerate(items)])
        offset = end
    del buffer[:offset]
    return frames


class RelayError(RuntimeError):
    """The relay process stopped; the message says why (e.g. Redis unreachable for too long)."""


class SnapshotRelay:
    """The training process's end: start the relay child, hand it batches, wait for flushes."""

    def __init__(self, redis_url: str, max_backlog: int, retry_s: float = RETRY_S) -> None:
        self._args = [sys.executable, "-m", "worker.relay", redis_url, str(max_backlog), str(retry_s)]
        self._start()

    def _start(self) -> None:
        self._process = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         preexec_fn=die_with_parent)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._to_relay = self._process.stdin.fileno()
        self._from_relay = self._process.stdout.fileno()
        try:
            fcntl.fcntl(self._to_relay, _F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            pass  # not Linux, or over the system's pipe-max-size: the default pipe works, with less slack

    def ensure_running(self) -> None:
        """Start a fresh relay process if this one has stopped."""
        if self._process.poll() is not None:
            self.close()
            self._start()

    def send(self, run_id: str, matrices: np.ndarray, items: list[tuple[int, int, dict]]) -> None:
        self._write(encode_batch(run_id, matrices, items))

    def flush(self) -> None:
        """Return once every snapshot sent before is in Redis."""
        self._write([_LENGTHS.pack(0, 0)])
        if os.read(self._from_relay, 1) != FLUSHED:
            raise self._failure()

    def close(self) -> None:
        try:
            self._process.stdin.close()  # type: ignore[union-attr]  # end of input: relay the rest, exit
        except BrokenPipeError:
            pass  # it had stopped with unread input
        self._process.wait()
        self._process.stdout.close()  # type: ignore[union-attr]

    def _write(self, buffers: list[bytes | memoryview]) -> None:
        # One gathering write and no joined copy; a blocking pipe takes it whole unless a signal cuts it short.
        try:
            written = os.writev(self._to_relay, buffers)
            if written == sum(memoryview(b).nbytes for b in buffers):
                return
            rest = memoryview(b"".join(buffers))[written:]
            while rest:
                rest = rest[os.write(self._to_relay, rest) :]
        except BrokenPipeError:
            raise self._failure() from None

    def _failure(self) -> RelayError:
        message = self._process.stdout.read().decode(errors="replace").removeprefix(FAILED.decode())  # type: ignore[union-attr]
        code = self._process.wait()
        return RelayError(f"snapshot relay stopped (exit code {code}): {message.strip() or 'no message'}")


def relay(source: int, replies: int, client: redis.Redis, max_backlog: int, retry_s: float) -> None:
    buffer = bytearray()
    while True:
        chunk = os.read(source, _PIPE_BYTES)
        if not chunk:
            return
        buffer += chunk
        commands: list[list[bytes]] = []
        for frame in decode_frames(buffer):
            if frame is None:
                _xadd_all(client, commands, max_backlog, retry_s)
                commands = []
                os.write(replies, FLUSHED)
            else:
                commands += [_xadd_command(snapshot) for snapshot in frame]
        _xadd_all(client, commands, max_backlog, retry_s)
        # Nap before the next read: a write to a pipe whose reader is blocked on it pays for waking that
        # reader (a few times the cost of the copy itself); a napping reader is woken by nobody.
        time.sleep(_NAP_S)


def _xadd_command(snapshot: Snapshot) -> list[bytes]:
    """XADD of one snapshot in RESP, the neuron bytes left as a buffer of their own (sent, never re-copied)."""
    args = [b"XADD", SNAPSHOTS.encode(), b"*"]
    for key, value in snapshot.encode().items():
        args += [key.encode(), value.encode() if isinstance(value, str) else value]
    buffers, head = [], b"*%d\r\n" % len(args)
    for arg in args:
        head += b"$%d\r\n" % len(arg)
        if len(arg) > _INLINE_BYTES:
            buffers += [head, arg]
            head = b"\r\n"
        else:
            head += arg + b"\r\n"
    return [*buffers, head]


def _xadd_all(client: redis.Redis, commands: list[list[bytes]], max_backlog: int, retry_s: float) -> None:
    """XADD every command, retrying through a Redis restart: a repeated XADD is harmless, since the
    analysers store each (run, step) once."""
    if not commands:
        return
    deadline = time.monotonic() + retry_s
    pause = 0.1
    while True:
        try:
            while client.xlen(SNAPSHOTS) > max_backlog:
                time.sleep(_BACKLOG_POLL_S)
            _xadd_once(client, commands)
            return
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 2.0)


def _xadd_once(client: redis.Redis, commands: list[list[bytes]]) -> None:
    connection = client.connection_pool.get_connection()
    try:
        _send(connection, [piece for command in commands for piece in command])
        for _ in commands:
            connection.read_response()  # raises on an error reply, e.g. Redis out of memory
    except BaseException:
        connection.disconnect()  # replies may be left unread: never hand this connection out again
        raise
    finally:
        client.connection_pool.release(connection)


def _send(connection: redis.connection.AbstractConnection, buffers: list[bytes]) -> None:
    # One gathering sendmsg per batch: redis-py's pipeline packs every argument in Python and sends each
    # buffer with its own call, twice this process's CPU per snapshot, and on a small machine that CPU is
    # taken from training. redis-py keeps its socket private; TLS (or a future redis-py) takes its own path.
    sock = getattr(connection, "_sock", None)
    if type(sock) is not socket.socket:
        connection.send_packed_command(b"".join(buffers))
        return
    for start in range(0, len(buffers), _IOV_MAX):
        part = buffers[start : start + _IOV_MAX]
        sent = sock.sendmsg(part)
        if sent < sum(len(piece) for piece in part):
            sock.sendall(b"".join(part)[sent:])


def main() -> None:
    # Ctrl-C on a terminal reaches the whole process group: the worker stops its run and then closes the
    # pipe, and everything it wrote before must still be relayed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    redis_url, max_backlog, retry_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    replies = sys.stdout.fileno()
    try:
        relay(sys.stdin.fileno(), replies, redis.Redis.from_url(redis_url), max_backlog, retry_s)
    except Exception as exc:  # the training process reads this as the reason publishing failed
        os.write(replies, FAILED + f"{type(exc).__name__}: {exc}".encode())
        sys.exit(1)


if __name__ == "__main__":
    main()
