"""Start a throwaway real `redis-server` on a free loopback port for integration tests, and always stop it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

DEFAULT_BINARY = "/usr/bin/redis-server"
READY_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
_PING = b"*1\r\n$4\r\nPING\r\n"
_INFO_SERVER = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"


class RedisServerError(RuntimeError):
    """redis-server is missing or did not become ready; the message says which and shows its log tail."""


@dataclass
class RedisHandle:
    """A running redis-server started by `running_redis()`."""

    port: int
    pid: int
    _process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as in a crash: no graceful shutdown. Then reap it."""
        if self._process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self._process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after STOP_TIMEOUT_S; idempotent."""
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=STOP_TIMEOUT_S)


def find_redis_server() -> str:
    found = shutil.which("redis-server") or (DEFAULT_BINARY if os.access(DEFAULT_BINARY, os.X_OK) else None)
    if found is None:
        raise RedisServerError(
            "redis-server not found on PATH or at /usr/bin/redis-server; install it (apt-get install redis-server)"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping(port: int, timeout_s: float = 0.5) -> bool:
    """True if a Redis on 127.0.0.1:port answers PING with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(_PING)
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def server_pid(port: int, timeout_s: float = 0.5) -> int | None:
    """The process id reported by the Redis on 127.0.0.1:port, or None if none answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(_INFO_SERVER)
            reply = b""
            while b"process_id:" not in reply or not reply.split(b"process_id:", 1)[1].count(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    value = reply.split(b"process_id:", 1)[1].split(b"\r\n", 1)[0]
    return int(value) if value.isdigit() else None


@contextlib.contextmanager
def running_redis(
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[RedisHandle]:
    """Run redis-server on 127.0.0.1 without persistence until the block exits.

    `port=None` picks a free port, retrying with another one if the chosen port is taken between our probe
    and redis binding it. Pass a port to restart a server where a killed one was (an outage that ends).
    """
    binary = find_redis_server()
    attempts = 1 if port is not None else 3
    with tempfile.TemporaryDirectory(prefix="r1cds-redis-") as workdir:
        for attempt in range(1, attempts + 1):
            chosen = port if port is not None else free_port()
            log_path = Path(workdir) / f"redis-{chosen}.log"
            with log_path.open("wb") as log_file:
                handle = _start(binary, chosen, workdir, log_file, extra_args)
                try:
                    _wait_ready(handle, ready_timeout_s, log_path)
                except RedisServerError:
                    handle.stop()
                    if attempt == attempts or port is not None:
                        raise
                    continue
                try:
                    yield handle
                finally:
                    handle.stop()
                return


def _start(
    binary: str, port: int, workdir: str, log_file: IO[bytes], extra_args: tuple[str, ...]
) -> RedisHandle:
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", workdir,
        "--logfile", "",
        *extra_args,
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return RedisHandle(port=port, pid=process.pid, _process=process)


def _wait_ready(handle: RedisHandle, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not handle.running:
            raise RedisServerError(
                f"redis-server exited before answering on port {handle.port}:\n{_tail(log_path)}"
            )
        # Ask for the pid, not just PONG: another Redis may own the port our process failed to bind.
        if server_pid(handle.port) == handle.pid:
            return
        time.sleep(0.02)
    raise RedisServerError(
        f"redis-server did not answer within {timeout_s}s on port {handle.port}:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
