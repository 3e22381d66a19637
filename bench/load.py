"""Load-bench plumbing shared by bench.hook_overhead and bench.queue: child servers, the closed-loop load, the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.stats import median, percentile

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
T = TypeVar("T")

# The exceptions a keep-alive connection can end with; each is counted, and the connection reopened.
CONNECTION_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class BenchError(RuntimeError):
    """The benchmark could not measure what it claims to: reported, and the exit status is 1."""


class RequestsExhausted(Exception):
    """Raised by a `next_request` supplier with nothing left to send (a finite token pool)."""


# --- small helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def fastest(module: str, fallback: str) -> str:
    """`module` when installed (uvloop, httptools), else the stock `fallback` uvicorn would use."""
    return module if importlib.util.find_spec(module) is not None else fallback


def percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * 100:.0f}%"


def verdict(passed: bool, text: str) -> str:
    return f"{'PASS' if passed else 'FAIL'}  {text}"


def progress(text: str) -> None:
    # stderr, so stdout carries only the report.
    print(text, file=sys.stderr, flush=True)


def finite(value: Any) -> Any:
    """NaN (a row with no completed request) as JSON null: NaN is not JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def positive(kind: type[float] | type[int]) -> Callable[[str], Any]:
    """An argparse `type` accepting only numbers > 0."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child process, with `extra` as the whole R1 CDS configuration.

    R1CDS_* in the caller's environment would change the settings under test, so they are dropped.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("R1CDS_")}
    return {**env, **extra, "PYTHONPATH": str(REPO_ROOT)}


def loopback_client(timeout: float = 10.0) -> Any:
    import httpx

    # trust_env=False: an HTTP(S)_PROXY in the environment must not route loopback calls elsewhere.
    return httpx.Client(trust_env=False, timeout=timeout)


def round_medians(rounds: list[dict[str, Any]], floor_rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's per-round results as medians, its ratios to the floor taken round by round first.

    Each pair of rounds ran back to back, so machine drift cancels out of the ratios.
    """
    pairs = list(zip(rounds, floor_rounds, strict=True))
    return {
        "rps": median([r["rps"] for r in rounds]),
        "p50_ms": median([r["p50_ms"] for r in rounds]),
        "p99_ms": median([r["p99_ms"] for r in rounds]),
        "throughput_ratio": median([r["rps"] / f["rps"] for r, f in pairs if f["rps"]]),
        "p99_ratio": median([r["p99_ms"] / f["p99_ms"] for r, f in pairs if f["p99_ms"]]),
        "errors": sum(sum(r["errors"].values()) for r in rounds),
        "server_cpu": median([r["server_cpu"] for r in rounds]),
        "client_cpu": median([r["client_cpu"] for r in rounds]),
    }


# --- child processes ----------------------------------------------------------------------------------


@dataclass
class Child:
    """A child process of the bench in its own session, its output in a private log; stopped by its pid."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    grace_s: float = 10.0

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its process group (a prefork worker's children) after `grace_s`; idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=self.grace_s)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def spawn(
    name: str,
    command: list[str],
    env: dict[str, str],
    workdir: Path,
    stack: ExitStack,
    *,
    grace_s: float = 10.0,
) -> Child:
    """Start `command` in the repository root, registered on `stack` to be stopped however the bench ends."""
    log_path = workdir / f"{name}-{secrets.token_hex(3)}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # its own process group, so the SIGKILL fallback reaches its children
        )
    child = Child(name, process, log_path, grace_s)
    stack.callback(child.stop)
    return child


@dataclass
class Server:
    kind: str
    port: int
    child: Child

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def start_uvicorn(
    kind: str,
    factory: str,
    env_for_port: Callable[[int], dict[str, str]],
    workdir: Path,
    stack: ExitStack,
    *,
    grace_s: float = 10.0,
) -> Server:
    """One uvicorn process serving the app `factory` builds; waits until it answers HTTP.

    `env_for_port` gives the child's whole environment for the port it will listen on (the app may need
    its own public URL). A server that dies at once is retried on another port, in case that one was taken.
    """
    import httpx

    loop, http = fastest("uvloop", "asyncio"), fastest("httptools", "h11")
    failure = "(not started)"
    for _attempt in range(3):
        port = free_port()
        command = [
            sys.executable, "-m", "uvicorn", "--factory", factory,
            "--host", LOOPBACK, "--port", str(port), "--workers", "1", "--loop", loop, "--http", http,
            "--no-access-log", "--log-level", "warning", "--lifespan", "on",
            "--timeout-graceful-shutdown", "2",
        ]  # fmt: skip
        server = Server(kind, port, spawn(kind, command, env_for_port(port), workdir, stack, grace_s=grace_s))
        deadline = time.monotonic() + 30
        with loopback_client(timeout=1.0) as client:
            while time.monotonic() < deadline and server.child.process.poll() is None:
                try:
                    client.get(f"{server.url}/")  # any answer, even 404, means it is serving
                    return server
                except httpx.TransportError:
                    time.sleep(0.1)
        server.child.stop()
        failure = server.child.log_tail()
        if time.monotonic() >= deadline:
            break  # slow, not a port taken meanwhile: another port would not help
    raise BenchError(f"the {kind} server did not start:\n{failure}")


def run_loadgen(
    module: str, label: str, spec: dict[str, Any], spec_file: Path, limit_s: float
) -> dict[str, Any]:
    """Run `python -m module --loadgen spec_file` (the load in its own process) and return its JSON result."""
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, "-m", module, "--loadgen", str(spec_file)]
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, timeout=limit_s, check=False)
    except subprocess.TimeoutExpired:
        # subprocess.run has already killed and reaped the load generator.
        raise BenchError(f"{label}: the load generator ran past {limit_s:g} s") from None
    if done.returncode != 0:
        raise BenchError(
            f"{label}: the load generator failed:\n{done.stderr.decode(errors='replace')[-2000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- the load generator (runs in its own process) ------------------------------------------------------


@dataclass
class LoadStats:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    exhausted_at: float | None = None  # when a finite `next_request` supplier ran out


@dataclass
class Measured:
    stats: LoadStats
    window: tuple[float, float]
    server_cpu: float | None
    client_cpu: float

    def latency_ms(self, q: float) -> float:
        return percentile(self.stats.latencies, q) * 1000 if self.stats.latencies else math.nan


def post_head(path: str, port: int, body_length: int) -> bytes:
    """An HTTP/1.1 POST head without its closing blank line, so headers can still be appended."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {body_length}\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    # Only what the servers under test send: a status line and a Content-Length body (no chunking).
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    marker = head.lower().find(b"\r\ncontent-length:")
    if marker < 0:
        raise ValueError("response without Content-Length")
    length = int(head[marker + 17 : head.index(b"\r\n", marker + 2)])
    return status, await reader.readexactly(length)


async def client(
    port: int,
    next_request: Callable[[], bytes],
    check: Callable[[bytes], bool],
    window: tuple[float, float],
    stats: LoadStats,
) -> None:
    """One keep-alive connection in a closed loop: send, read the whole answer, check it, repeat.

    Raw HTTP/1.1 over asyncio, because an httpx client spends more CPU per request than the floor does
    and would measure itself.
    """
    measure_from, measure_until = window
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while time.perf_counter() < measure_until:
            try:
                request = next_request()
            except RequestsExhausted:
                stats.exhausted_at = min(stats.exhausted_at or math.inf, time.perf_counter())
                return
            try:
                if reader is None or writer is None:
                    reader, writer = await asyncio.open_connection(LOOPBACK, port)
                started = time.perf_counter()
                writer.write(request)
                status, payload = await read_response(reader)
                finished = time.perf_counter()
            except CONNECTION_ERRORS as exc:
                stats.errors[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
                continue
            if status != 200:
                stats.errors[f"HTTP {status}"] += 1
            elif not check(payload):
                stats.errors["unexpected body"] += 1
            if measure_from <= started and finished <= measure_until:
                stats.latencies.append(finished - started)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float | None:
    """cpu_seconds of a process and its live descendants (a prefork worker's children, say)."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(child) for child in (task / "children").read_text().split()]
    return own + sum(filter(None, (tree_cpu_seconds(child) for child in children)))


async def sample_cpu(server_pid: int, window: tuple[float, float]) -> tuple[float | None, float]:
    """Share of one core the server and this client used during the measured window."""
    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    server_before, client_before, wall_before = (
        cpu_seconds(server_pid),
        time.process_time(),
        time.perf_counter(),
    )
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    server_after, client_after, wall_after = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    wall = wall_after - wall_before
    server = None if server_before is None or server_after is None else (server_after - server_before) / wall
    return server, (client_after - client_before) / wall


async def closed_loop(
    port: int,
    next_request: Callable[[], bytes],
    check: Callable[[bytes], bool],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    server_pid: int,
) -> Measured:
    """`concurrency` keep-alive clients for warm-up + duration; latencies count inside the window only."""
    stats = LoadStats()
    start = time.perf_counter()
    window = (start + warmup_s, start + warmup_s + duration_s)
    # A hung server must not hang the benchmark: everything ends a fixed time after the window.
    async with asyncio.timeout(warmup_s + duration_s + 30):
        sampler = asyncio.create_task(sample_cpu(server_pid, window))
        await asyncio.gather(*(client(port, next_request, check, window, stats) for _ in range(concurrency)))
        server_cpu, client_cpu = await sampler
    stats.latencies.sort()
    return Measured(stats, window, server_cpu, client_cpu)


def run_fastest(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when installed, as the servers do, so the client is not the slower side."""
    loop_factory = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)
