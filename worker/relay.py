"""A child process that turns the training process's snapshots into stream messages and XADDs them.

Encoding a stream message and pushing it through redis-py costs tens of microseconds of Python per
snapshot, and a figure-eight step takes about half a millisecond; in the training process (in a thread,
sharing its GIL) that time would be taken from training. So the training process only copies each snapshot
into a slot of an arena of shared memory and, every few milliseconds, writes one small JSON line to this
process's pipe naming the slots just filled (run, steps, metrics). This process encodes each snapshot as
its wire message (topowatch.wire), frees the slots, XADDs the messages in one round trip, and holds back
while the analysers' backlog is over its cap. A full arena makes the writer wait: memory stays bounded
and no snapshot is ever dropped.

The arena (a memory-mapped file, unlinked once both processes have it mapped) starts with a counter of
the snapshots this process has taken out; the training process never gets a whole arena ahead of it.
Pipe frames: ``<u32 length>`` JSON, either ``{"arena", "size"}`` (map this file), a batch
``{"run_id", "shape", "first", "items": [[step, epoch, metrics], ...]}``, or empty: a flush, answered
``k`` once everything before it is in Redis, or ``E`` and the reason if the relay failed.
"""

from __future__ import annotations

import fcntl
import json
import math
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import redis

from topowatch.processes import die_with_parent
from topowatch.wire import NEURON_DTYPE, SNAPSHOTS, Snapshot

_LENGTH = struct.Struct("<I")
_F_SETPIPE_SZ = 1031  # Linux: room for many batch lines before a busy relay blocks the writer
_PIPE_BYTES = 1 << 20
_NAP_S = 0.005
_BATCH_S = 0.02  # a batch is announced once its first snapshot is this old ...
_QUIET_S = 0.01  # ... or at once when the previous snapshot came this long ago (a slow run is never held back)
_INLINE_BYTES = 1024  # longer arguments (the neuron bytes) are sent from their own buffer
_IOV_MAX = 1000  # buffers per sendmsg; Linux allows 1024
_BACKLOG_POLL_S = 0.2
_COUNTER_BYTES = 64
ARENA_BYTES = 8 << 20
RETRY_S = 30.0  # Redis may restart (or a network blip pass) this long before the run is failed
FLUSHED = b"k"
FAILED = b"E"


def encode_frame(message: dict[str, Any] | None) -> bytes:
    body = b"" if message is None else json.dumps(message).encode()
    return _LENGTH.pack(len(body)) + body


def decode_frames(buffer: bytearray) -> list[dict[str, Any] | None]:
    """Take every complete frame off the front of ``buffer`` (None for a flush); a partial one stays."""
    frames: list[dict[str, Any] | None] = []
    offset = 0
    while len(buffer) - offset >= _LENGTH.size:
        (length,) = _LENGTH.unpack_from(buffer, offset)
        end = offset + _LENGTH.size + length
        if end > len(buffer):
            break
        frames.append(json.loads(bytes(buffer[offset + _LENGTH.size : end])) if length else None)
        offset = end
    del buffer[:offset]
    return frames


class Arena:
    """Shared memory: the taken-out counter (written by the relay), then snapshot slots (written by training)."""

    def __init__(self, path: str, size: int) -> None:
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), size)
        self.path = path
        self.size = size
        self.taken = np.frombuffer(self._map, np.uint64, 1, 0)

    @classmethod
    def create(cls, size: int) -> Arena:
        shm = "/dev/shm"
        # tmpfs if it has room (a container's is often small), else the temp directory's page cache
        roomy = os.path.isdir(shm) and os.statvfs(shm).f_bavail * os.statvfs(shm).f_frsize > 2 * size
        fd, path = tempfile.mkstemp(prefix="topowatch-arena-", dir=shm if roomy else None)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return cls(path, size)

    @staticmethod
    def size_for(shape: tuple[int, ...]) -> int:
        return max(ARENA_BYTES, _COUNTER_BYTES + 2 * 4 * math.prod(shape))

    def slots(self, shape: tuple[int, ...]) -> np.ndarray:
        """(count, *shape) float32 view of the slots for snapshots of this shape."""
        per_slot = math.prod(shape)
        count = (self.size - _COUNTER_BYTES) // (4 * per_slot)
        return np.frombuffer(self._map, NEURON_DTYPE, count * per_slot, _COUNTER_BYTES).reshape(count, *shape)

    def close(self) -> None:
        self.taken = None  # type: ignore[assignment]
        try:
            self._map.close()
        except BufferError:
            pass  # a view of it is still alive somewhere; the mapping goes with it


class RelayError(RuntimeError):
    """The relay process stopped; the message says why (e.g. Redis unreachable for too long)."""


class SnapshotRelay:
    """The training process's end: start the relay child, put snapshots in the arena, announce them in
    batches, wait for flushes."""

    def __init__(self, redis_url: str, max_backlog: int, retry_s: float = RETRY_S) -> None:
        self._args = [sys.executable, "-m", "worker.relay", redis_url, str(max_backlog), str(retry_s)]
        self._arena: Arena | None = None
        self._slots: np.ndarray | None = None
        self._written = 0  # snapshots put in the current arena
        self._free_until = 0  # _written may grow up to this without asking the relay how far it has got
        self._batch: list[list[Any]] = []  # [step, epoch, metrics] of the slots not announced yet
        self._batch_run = ""
        self._batch_first = 0
        self._batch_started = 0.0
        self._last_put = 0.0
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
        self._drop_arena()  # a fresh process maps a fresh arena

    def ensure_running(self) -> None:
        """Start a fresh relay process if this one has stopped."""
        if self._process.poll() is not None:
            self.close()
            self._start()

    def put(self, run_id: str, step: int, epoch: int, neurons: np.ndarray, metrics: dict[str, Any]) -> None:
        """Copy one snapshot into the arena; announce the batch when it is due."""
        now = time.monotonic()
        if self._slots is None or self._slots.shape[1:] != neurons.shape:
            self._fit(neurons.shape)
        elif self._batch and run_id != self._batch_run:
            self._announce()
        assert self._slots is not None and self._arena is not None
        slots = len(self._slots)
        # The shared counter is read only when the slots known to be free run out, not on every step.
        while self._written >= self._free_until:
            self._free_until = int(self._arena.taken[0]) + slots
            if self._written >= self._free_until:  # the relay is a whole arena behind
                self._announce()
                self._wait_for_relay()
        if not self._batch:
            self._batch_run, self._batch_first, self._batch_started = run_id, self._written, now
        self._slots[self._written % slots] = neurons
        self._batch.append([step, epoch, metrics])
        self._written += 1
        if (now - self._last_put >= _QUIET_S or now - self._batch_started >= _BATCH_S
                or len(self._batch) >= max(1, slots // 2)):
            self._announce()
        self._last_put = now

    def flush(self) -> None:
        """Return once every snapshot put before is in Redis."""
        self._announce()
        self._write(encode_frame(None))
        if os.read(self._from_relay, 1) != FLUSHED:
            raise self._failure()

    def close(self) -> None:
        try:
            self._announce()
        except RelayError:
            pass  # it had stopped; the run using it has been told
        try:
            self._process.stdin.close()  # type: ignore[union-attr]  # end of input: relay the rest, exit
        except BrokenPipeError:
            pass  # it had stopped with unread input
        self._process.wait()
        self._process.stdout.close()  # type: ignore[union-attr]
        self._drop_arena()

    def _fit(self, shape: tuple[int, ...]) -> None:
        """Slots for this shape; a bigger arena, shared with the relay, when the current one cannot hold two."""
        self.flush()  # the relay is done with every slot, whatever their shape
        if self._arena is None or self._arena.size < Arena.size_for(shape):
            self._drop_arena()
            arena = Arena.create(Arena.size_for(shape))
            try:
                self._write(encode_frame({"arena": arena.path, "size": arena.size}))
                self.flush()  # answered after the relay has mapped it
            finally:
                os.unlink(arena.path)  # both ends have it mapped: nothing is left behind, even after a crash
            self._arena, self._written = arena, 0
        self._slots, self._free_until = self._arena.slots(shape), 0

    def _drop_arena(self) -> None:
        self._slots = None
        if self._arena is not None:
            self._arena.close()
        self._arena, self._written, self._free_until, self._batch = None, 0, 0, []

    def _announce(self) -> None:
        if self._batch:
            assert self._slots is not None
            self._write(encode_frame({"run_id": self._batch_run, "shape": self._slots.shape[1:],
                                      "first": self._batch_first, "items": self._batch}))
            self._batch = []

    def _wait_for_relay(self) -> None:
        if self._process.poll() is not None:
            raise self._failure()
        time.sleep(0.0005)

    def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        try:
            while view:
                view = view[os.write(self._to_relay, view) :]
        except BrokenPipeError:
            raise self._failure() from None

    def _failure(self) -> RelayError:
        message = self._process.stdout.read().decode(errors="replace").removeprefix(FAILED.decode())  # type: ignore[union-attr]
        code = self._process.wait()
        return RelayError(f"snapshot relay stopped (exit code {code}): {message.strip() or 'no message'}")


def relay(source: int, replies: int, client: redis.Redis, max_backlog: int, retry_s: float) -> None:
    arena: Arena | None = None
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
            elif "arena" in frame:
                if arena is not None:
                    arena.close()
                arena = Arena(frame["arena"], frame["size"])
            else:
                assert arena is not None, "a batch before any arena"
                commands += _take_out(frame, arena)
        _xadd_all(client, commands, max_backlog, retry_s)
        # Nap before the next read: a write to a pipe whose reader is blocked on it pays for waking that
        # reader; a napping reader is woken by nobody.
        time.sleep(_NAP_S)


def _take_out(batch: dict[str, Any], arena: Arena) -> list[list[bytes]]:
    """The batch's XADD commands; encoding copies the neurons out, so their slots are free again after."""
    slots = arena.slots(tuple(batch["shape"]))
    first = batch["first"]
    commands = [_xadd_command(Snapshot(batch["run_id"], step, epoch, slots[(first + i) % len(slots)], metrics))
                for i, (step, epoch, metrics) in enumerate(batch["items"])]
    arena.taken[0] = first + len(batch["items"])
    return commands


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
