"""The AI review path as real processes for integration tests and benches: API, worker, Redis, SGLang stand-in."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from cds_hooks import fire
from cds_hooks.settings import load_settings
from cds_hooks.stack import build_app
from plugin.fhir_search import FhirStore
from tests.support import governance_corpus as corpus
from tests.support.asgi_server import ServedApp, serve_asgi
from tests.support.sglang_stand_in import SGLangStandIn
from tests.support.suite_phi import keep_log
from workers.settings import ReviewSettings

REPO = Path(__file__).resolve().parents[2]
FHIR_BASE = "https://ehr.test.invalid/fhir"
USER = "Practitioner/review-stack"
# Short limits so that faults resolve within a test: a dead worker's task is handed out again after
# VISIBILITY_S, and a failing model is retried twice with 1 s and 2 s backoff. A review that runs longer
# than VISIBILITY_S is handed out again while it runs, so a test whose model answers slowly passes
# visibility_timeout_s=None (derived from the model timeout, as in production).
VISIBILITY_S = 4
WORKER_READY_S = 30.0


def review_settings(redis_url: str, model_url: str, model_name: str, **overrides: Any) -> ReviewSettings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "model_backend": "sglang",
        "model_url": model_url,
        "model_name": model_name,
        "review_samples": 3,
        "task_soft_limit_s": 20,
        "task_hard_limit_s": 30,
        "task_max_retries": 2,
        "visibility_timeout_s": VISIBILITY_S,
        "model_timeout_s": 5.0,
        "worker_concurrency": 4,
        **overrides,
    }
    return ReviewSettings(**values)


def settings_env(settings: ReviewSettings) -> dict[str, str]:
    """The R1CDS_* variables that give a worker process the same settings."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        env[f"R1CDS_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


@dataclass
class WorkerProcess:
    """`r1cds worker` as a child process; its log goes to a private file, read on failure."""

    env: Mapping[str, str]
    pool: str = "threads"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> WorkerProcess:
        fd, name = tempfile.mkstemp(prefix="r1cds-worker-", suffix=".log")
        self.log_path = Path(name)
        self._log = os.fdopen(fd, "wb")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("R1CDS_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cds_hooks.cli", "worker", "--pool", self.pool],
            cwd=REPO,
            env={**clean, **self.env, "PYTHONPATH": str(REPO)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            if b"ready." in (self.log_path.read_bytes() if self.log_path else b""):
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready within {WORKER_READY_S} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL the worker and every process it started (its session), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill_by_pid(self) -> None:
        """SIGKILL the worker process alone, by its own pid (a thread-pool worker runs every task in it)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
        if self.log_path is not None:
            keep_log("workers.log", self.log_path.read_text(errors="replace"))  # for the suite's PHI scan
            self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def running_worker(settings: ReviewSettings, pool: str = "threads") -> Iterator[WorkerProcess]:
    worker = WorkerProcess(settings_env(settings), pool)
    try:
        yield worker.start()
    finally:
        worker.stop()


@contextlib.contextmanager
def serve_review_api(review: ReviewSettings, **overrides: Any) -> Iterator[ServedApp]:
    """The real app, AI review path included, over loopback HTTP; EHR authentication off."""

    def build(url: str) -> Any:
        settings = load_settings(
            public_base_url=url,
            redis_url=review.redis_url,
            auth_disabled=True,
            fhir_allow_http=True,
            fhir_allow_private_networks=True,
            **overrides,
        )
        return build_app(settings, review)

    with serve_asgi(build, name="r1cds-review-api") as served:
        yield served


def hook_request(hook: str, drafts: Mapping[str, Any] | None = None, selections: tuple[str, ...] = ()) -> Any:
    """A hook call for the governance corpus chart, with every prefetch key filled as an EHR would."""
    store = FhirStore.from_bundles([corpus.bundle()])
    patient_id = corpus.PATIENT.split("/", 1)[1]
    context = fire.build_context(hook, store, patient_id, USER, None, dict(drafts) if drafts else None)
    if selections:
        context["selections"] = list(selections)
    service = "r1-order-review" if hook.startswith("order-") else "r1-chart-review"
    from plugin.catalog import CHART_PREFETCH, ORDER_PREFETCH

    templates = ORDER_PREFETCH if service == "r1-order-review" else CHART_PREFETCH
    prefetch = fire.build_prefetch(dict(templates), context, store, FHIR_BASE)
    return service, fire.build_request(hook, context, prefetch, None)


def clean_answer() -> str:
    return json.dumps(corpus.answer(corpus.clean_inr()))


def post(client: httpx.Client, base_url: str, service: str, request: Any) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = client.post(f"{base_url}/cds-services/{service}", json=request)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, elapsed


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stand_in() -> SGLangStandIn:
    return SGLangStandIn(served_model_name="deepseek-r1-test")
