"""Medplum's FHIR router (tests/interop/medplum/server.mjs) as a loopback FHIR R4 server for interop tests."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fixtures_paths import REPO_ROOT

MEDPLUM_DIR = REPO_ROOT / "tests" / "interop" / "medplum"
SERVER_SCRIPT = MEDPLUM_DIR / "server.mjs"
FHIR_BASE_PATH = "/fhir/R4"
REQUIRE_ENV = "R1CDS_REQUIRE_MEDPLUM"
# Loading the definitions and the 20 fixture charts takes about 1 s here; the margin covers a busy machine.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
MIN_NODE = (20, 19)  # the engines range of @medplum/core 4.5.2: ^20.19.0 || >=22.12.0


def _version_tuple(version: str) -> tuple[int, ...]:
    """`v20.20.2` as (20, 20, 2); anything unreadable as (0,)."""
    try:
        return tuple(int(part) for part in version.removeprefix("v").split("."))
    except ValueError:
        return (0,)


def medplum_problem() -> str | None:
    """Why the Medplum server cannot run here, or None when node and the installed packages are present."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed (apt-get install -y nodejs npm)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    if _version_tuple(version) < MIN_NODE:
        return f"node {version} is older than the pinned Medplum packages support (20.19 or newer)"
    if not (MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return f"Medplum's packages are not installed (run `npm ci --no-audit --no-fund` in {MEDPLUM_DIR})"
    return None


def require_medplum() -> None:
    """Skip the calling test when Medplum cannot run, or fail it when R1CDS_REQUIRE_MEDPLUM=1 (CI)."""
    problem = medplum_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {problem}")
    pytest.skip(problem)


@dataclass
class MedplumHandle:
    """A running server: its FHIR base URL and the admin switches of tests/interop/medplum/server.mjs."""

    base_url: str
    origin: str
    pid: int
    resources: int

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.request(method, f"{self.origin}/admin/{path}", json=body, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def set_faults(self, **switches: Any) -> dict[str, Any]:
        """Change switches (delay_ms, outcome_for, bearer, paging_links, default_count, resolve_bare_ids)."""
        return self._admin("POST", "faults", switches)

    def reset(self) -> None:
        """Every switch back to its start value, and the request log emptied."""
        self._admin("POST", "reset")

    def requests(self) -> list[dict[str, Any]]:
        """Each FHIR request so far: method, path below the base, decoded query, and whether its bearer fit."""
        log: list[dict[str, Any]] = self._admin("GET", "requests")["requests"]
        return log

    def fetched(self) -> list[str]:
        """The request log in the shape of a rendered prefetch template: `Type?query` or `Type/id`."""
        return [f"{r['path']}?{r['query']}" if r["query"] else r["path"] for r in self.requests()]


def _read_ready_line(process: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the Medplum server did not report ready within {START_TIMEOUT_S:.0f} s")
            if not selector.select(timeout=remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the Medplum server exited with status {process.wait(STOP_TIMEOUT_S)}")
            line += chunk
    ready: dict[str, Any] = json.loads(line)
    return ready


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


@contextmanager
def running_medplum(bundles: Sequence[Path], *, bearer: str | None = None) -> Iterator[MedplumHandle]:
    """Start server.mjs on a free loopback port with `bundles` loaded; stop that process (only) on exit."""
    require_medplum()
    node = shutil.which("node")
    assert node is not None
    command = [node, str(SERVER_SCRIPT), "--port", "0", "--base", FHIR_BASE_PATH]
    if bearer is not None:
        command += ["--bearer", bearer]
    command += [str(path) for path in bundles]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, cwd=MEDPLUM_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        try:
            try:
                ready = _read_ready_line(process, time.monotonic() + START_TIMEOUT_S)
            except (TimeoutError, RuntimeError, ValueError) as exc:
                _stop(process)
                stderr.seek(0)
                tail = stderr.read()[-2000:].decode("utf-8", "replace")
                raise RuntimeError(f"{exc}; its stderr ends:\n{tail}") from None
            origin = f"http://127.0.0.1:{ready['port']}"
            yield MedplumHandle(
                base_url=origin + ready["base"], origin=origin, pid=process.pid, resources=ready["resources"]
            )
        finally:
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()
