"""Composition root for running processes: the API with its AI review path, a worker, and `r1cds up`.

`r1cds up` runs the embedded stack on one machine and owns everything it starts:

    redis-server     on a free loopback port, unless R1CDS_REDIS_URL is set (apt-installed when missing,
                     if we are root and apt-get exists; otherwise a clear message)
    model server     the llama.cpp backend with the packaged demo model (or R1CDS_MODEL_NAME as a GGUF
                     path), unless R1CDS_MODEL_URL names a running server (SGLang, any OpenAI-compatible)
    worker           `r1cds worker` as a child process, told where Redis and the model are
    API              in this process, in the foreground, with the card preview at /preview (its URL is
                     printed at start; R1CDS_PREVIEW_ENABLED=false turns it off)
    audit chain      R1CDS_AUDIT_DATABASE_URL, or the SQLite file in the user's data directory
                     (workers.audit_store); the API and the worker both append to it
    metrics          R1CDS_METRICS_DIR (or PROMETHEUS_MULTIPROC_DIR), emptied at start, or a private
                     temporary directory; the API and the worker count into it, the API's /metrics
                     serves it (cds_hooks.metrics, workers.metrics)

On Ctrl-C or SIGTERM everything is stopped in reverse order, each child by its own pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI

from cds_hooks import metrics as api_metrics
from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from inference.llamacpp import LlamaCppServer, ServerConfig, packaged_model_path
from inference.prompts import SERVICE_TEMPLATES, service_template
from plugin.catalog import shipped_registry
from plugin.context.build import ContextOptions
from plugin.knowledge import load_knowledge_base
from plugin.model_card import ModelCardInputs
from workers import keys
from workers import metrics as worker_metrics
from workers.app import create_celery
from workers.audit_relay import AuditRelayConsumer, RedisAuditRelay
from workers.audit_store import AuditStore, AuditStoreError, anchor_log, database_url, migrate
from workers.semaphore import ModelSlots
from workers.settings import ReviewSettings
from workers.tasks import audit_store as worker_audit_store
from workers.wiring import api_review_path

log = logging.getLogger(__name__)

LLAMACPP_CONTEXT: Final = 8192  # prompts run ~3,000 tokens plus the completion budget
STOP_GRACE_S: Final = 10.0
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess directory
GAUGE_REDIS_TIMEOUT_S: Final = 1.0  # a scrape waits this long for the queue and slot counts, then omits them


class StackError(Exception):
    """Something `r1cds up` needs is missing; the message says what to do."""


def build_app(settings: Settings, review: ReviewSettings) -> FastAPI:
    """The API with the AI review path when enabled, rule cards only otherwise; audited either way."""
    options = ContextOptions(include_free_text=settings.context_include_free_text)
    directory = use_metrics_dir(review.metrics_dir)
    if directory is not None:
        api_metrics.enable(directory)
    audit = open_audit_store(review)
    if not review.ai_enabled:
        app = create_app(
            settings,
            shipped_registry(context_options=options),
            resources=[_closing(audit.close)],
            readiness={"audit": audit.ready},
            audit=audit,
        )
    else:
        knowledge = load_knowledge_base()
        path = api_review_path(review, settings.public_base, knowledge)
        registry = shipped_registry(knowledge, context_options=options, ai=path.ai)
        # Workers run with the AI path: the API hands its records to them through Redis (a pipelined
        # stream append per batch) rather than writing SQL on the request path's process.
        relay_client = aioredis.Redis.from_url(
            review.redis_url, socket_connect_timeout=review.redis_timeout_s
        )
        gauges_client = redis.Redis.from_url(
            review.redis_url,
            socket_timeout=GAUGE_REDIS_TIMEOUT_S,
            socket_connect_timeout=GAUGE_REDIS_TIMEOUT_S,
        )
        app = create_app(
            settings,
            registry,
            review_broker=path.broker,
            resources=[
                _closing(audit.close),
                path.running(),
                _closing(relay_client.aclose),
                _closing(gauges_client.close),
            ],
            sync_budget_s=path.budget_s,
            readiness={"model": path.model_ready, "audit": audit.ready},
            audit=RedisAuditRelay(relay_client, fallback=audit),
            collect_extra=review_gauges(gauges_client, review.model_slots),
        )
    app.state.model_card_inputs = model_card_inputs(settings, review)
    return app


def use_metrics_dir(directory: str | None) -> str | None:
    """Point this process's Prometheus metrics at `directory`, else PROMETHEUS_MULTIPROC_DIR; None: neither.

    prometheus_client chooses multiprocess mode when its `values` module is imported, from
    PROMETHEUS_MULTIPROC_DIR, and a process keeps the directory its first metric wrote to. Our metric
    modules import it only when enabled, after this has set the variable (child processes inherit it).
    Were it imported earlier without the variable (by a library, or a test), the mode is chosen again
    now: no metric of ours exists yet, so none is left in the wrong mode. A second, different directory
    in a process whose metrics already exist is refused with a warning: they keep the first.
    """
    current = os.environ.get(MULTIPROC_ENV) or None
    in_use = api_metrics.enabled() or worker_metrics.enabled()
    if in_use and current is not None and directory is not None and directory != current:
        log.warning(
            "metrics already go to %s in this process; R1CDS_METRICS_DIR=%s is not used", current, directory
        )
        directory = current
    directory = directory or current
    if directory is None:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = directory
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(getattr(values, "ValueClass", None), "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    return directory


@contextlib.contextmanager
def metrics_dir(review: ReviewSettings, *, empty: bool) -> Iterator[ReviewSettings]:
    """The review settings with the metrics directory of a process tree: the configured one (R1CDS_METRICS_DIR,
    else PROMETHEUS_MULTIPROC_DIR), its counts of an earlier run deleted when `empty`, or a private
    temporary one, removed afterwards. `r1cds up` owns every process that counts into its directory, so it
    empties it, as prometheus_client asks, before any starts; `r1cds serve` may share its directory with
    workers already running, so it leaves it as it is (empty it when the deployment starts).
    """
    configured = review.metrics_dir or os.environ.get(MULTIPROC_ENV) or None
    if configured is not None:
        if empty:
            for stale in Path(configured).glob("*.db"):
                stale.unlink(missing_ok=True)
        yield review.model_copy(update={"metrics_dir": configured})
        return
    private = tempfile.mkdtemp(prefix="r1cds-metrics-")
    try:
        yield review.model_copy(update={"metrics_dir": private})
    finally:
        shutil.rmtree(private, ignore_errors=True)


def review_gauges(client: redis.Redis, model_slots: int) -> api_metrics.CollectExtra:
    """The scrape-time gauges of the review path: depth of each Celery queue, model requests in flight."""
    slots = ModelSlots(client, model_slots)

    def read() -> list[api_metrics.ExtraGauge]:
        pipe = client.pipeline(transaction=False)
        for _, name in keys.QUEUES:
            pipe.llen(name)
        depths = pipe.execute()
        return [
            (
                api_metrics.QUEUE_DEPTH,
                "Review tasks waiting in each Celery queue",
                [((name,), float(depth)) for (_, name), depth in zip(keys.QUEUES, depths, strict=True)],
            ),
            (
                api_metrics.MODEL_IN_FLIGHT,
                "Model requests in flight across all workers",
                [((), float(slots.in_use()))],
            ),
        ]

    async def collect() -> list[api_metrics.ExtraGauge]:
        return await asyncio.to_thread(read)  # a blocking client, on a thread: scrapes are rare

    return collect


def open_audit_store(review: ReviewSettings) -> AuditStore:
    """The deployment's audit chain (R1CDS_AUDIT_DATABASE_URL, or the data-dir SQLite file), migrated.

    An unusable URL (another database kind) stops the start: it is a configuration error. A database
    that cannot be reached does not: hooks are answered without it, and each batch of records that
    cannot be written is logged (cds_hooks.handlers.AuditTrail) until it can.
    """
    url = database_url(review.audit_database_url)
    store = AuditStore(url, anchor_log(review))  # AuditStoreError: an unsupported URL, a broken anchor
    try:
        migrate(url)
    except AuditStoreError:
        store.close()
        raise
    except Exception as exc:
        log.warning("the audit database could not be migrated at start (%s)", type(exc).__name__)
    return store


@contextlib.asynccontextmanager
async def _closing(close: Callable[[], object]) -> AsyncIterator[None]:
    """A resource for the app's lifespan that calls `close` (awaiting it when it is a coroutine) at the end."""
    try:
        yield
    finally:
        closed = close()
        if inspect.isawaitable(closed):
            await closed


def model_card_inputs(settings: Settings, review: ReviewSettings) -> ModelCardInputs:
    """What /about publishes about this deployment: model, prompt versions, governance thresholds."""
    return ModelCardInputs(
        backend=review.model_backend,
        model=review.model_name,
        prompt_versions={
            service_id: f"{template.version}#{template.content_hash}"
            for service_id in SERVICE_TEMPLATES
            for template in (service_template(service_id),)
        },
        ai_enabled=review.ai_enabled,
        samples=review.review_samples,
        min_agreement=review.review_min_agreement,
        card_language=review.card_language,
        free_text=settings.context_include_free_text,
    )


@contextlib.contextmanager
def local_model(review: ReviewSettings) -> Iterator[ReviewSettings]:
    """Settings pointing at a model server: the configured one, or a llama.cpp server we start and stop."""
    if review.model_url is not None or review.model_backend != "llamacpp":
        yield review
        return
    if importlib.util.find_spec("llama_cpp") is None:
        raise StackError(
            "the llamacpp backend needs the cpu extra, which is not installed: `make install-cpu` builds "
            "llama.cpp once (about 4 minutes on 2 cores; needs gcc, g++ and cmake). Or run without a model "
            "server: R1CDS_MODEL_BACKEND=scripted (scripted demonstration output, not a model)."
        )
    named = review.model_name not in ("", "default")
    model_path = Path(review.model_name) if named else packaged_model_path()
    if named:
        log.info("llama.cpp backend with %s", model_path.name)
    else:
        log.warning(
            "AI backend: the packaged gemma 3 270m DEMO model on llama.cpp; its answers are not clinically "
            "meaningful and its cards say so. Set R1CDS_MODEL_URL to use SGLang (DeepSeek-R1)."
        )
    with LlamaCppServer(ServerConfig(model_path=model_path, n_ctx=LLAMACPP_CONTEXT)) as server:
        yield review.model_copy(update={"model_url": server.base_url, "model_name": str(model_path)})


def run_worker(review: ReviewSettings, pool: str | None = None) -> int:
    """A Celery worker on every review queue, most urgent first; blocks until stopped."""
    directory = use_metrics_dir(review.metrics_dir)
    if directory is not None:
        worker_metrics.enable(directory)
    else:
        log.info("no metrics directory (R1CDS_METRICS_DIR): this worker's reviews are not counted")
    # Celery's per-task "received" line is formatted and written between a task arriving and the task
    # starting; the "succeeded"/"failed"/"retry" line after it stays, and the audit trail has each review.
    logging.getLogger("celery.worker.strategy").setLevel(logging.WARNING)
    with local_model(review) as ready:
        app = create_celery(ready)
        argv = [
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            ",".join(name for _, name in keys.QUEUES),
            "--concurrency",
            str(ready.worker_concurrency),
            "--hostname",
            f"r1cds-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        if pool:
            argv += ["--pool", pool]
        relay = _audit_relay(ready)
        try:
            app.worker_main(argv)
        finally:
            if relay is not None:
                relay.stop()
    return 0


def _audit_relay(review: ReviewSettings) -> AuditRelayConsumer | None:
    """The worker's thread that appends the API's relayed audit records to the chain."""
    store = worker_audit_store(review)
    if store is None:
        return None
    client = redis.Redis.from_url(review.redis_url, socket_timeout=10, socket_connect_timeout=5)
    consumer = AuditRelayConsumer(client, store)
    consumer.start()
    return consumer


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        log.warning("redis-server is missing; installing it with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update", "-qq"], check=True, env=env)  # noqa: S603
        subprocess.run([apt, "install", "-y", "-qq", "redis-server"], check=True, env=env)  # noqa: S603
        found = shutil.which("redis-server")
        if found:
            return found
    raise StackError(
        "redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server) "
        "or point R1CDS_REDIS_URL at a running Redis."
    )


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """A private redis-server on a free loopback port, without persistence; its URL."""
    binary = redis_server_binary()  # before anything is created: a missing binary leaves nothing behind
    port = _free_port()
    directory = tempfile.mkdtemp(prefix="r1cds-redis-")
    process = subprocess.Popen(  # noqa: S603 - our own argv
        [
            binary,
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory, "--protected-mode", "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port, process)
        log.info("redis-server pid %d on 127.0.0.1:%d", process.pid, port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"redis-server exited with status {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise StackError(f"redis-server did not listen on port {port} within {timeout_s:.0f} s")


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def worker_process(env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-m", "cds_hooks.cli", "worker"], env={**os.environ, **env})
    log.info("worker pid %d started", process.pid)
    try:
        yield process
    finally:
        _stop(process)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_up(settings: Settings, review: ReviewSettings, serve: Any) -> int:
    """The embedded stack; `serve(app, settings)` runs the API in the foreground until it stops."""
    # SIGTERM unwinds like Ctrl-C, so every `finally` below stops what it started (uvicorn installs its
    # own handlers while it serves, and returns when told to stop).
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as stack:
        redis_url = review.redis_url
        if "R1CDS_REDIS_URL" not in os.environ:
            redis_url = stack.enter_context(local_redis())
        review = review.model_copy(update={"redis_url": redis_url})
        settings = settings.model_copy(update={"redis_url": redis_url})
        review = stack.enter_context(metrics_dir(review, empty=True))
        if review.ai_enabled:
            review = stack.enter_context(local_model(review))
            env = {
                "R1CDS_METRICS_DIR": review.metrics_dir or "",
                "R1CDS_REDIS_URL": redis_url,
                "R1CDS_MODEL_BACKEND": review.model_backend,
                "R1CDS_MODEL_NAME": review.model_name,
                "R1CDS_MODEL_URL": review.model_url or "",
            }
            if review.model_backend == "llamacpp":
                env["R1CDS_MODEL_SLOTS"] = "1"  # one llama.cpp server decodes one sequence at a time
            stack.enter_context(worker_process(env))
        if "R1CDS_PREVIEW_ENABLED" not in os.environ:
            # The embedded stack is for trying the service out: the card preview is on unless told otherwise.
            settings = settings.model_copy(update={"preview_enabled": True})
        app = build_app(settings, review)
        if settings.preview_enabled:
            print(f"R1 CDS card preview: {settings.public_base}/preview", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            serve(app, settings)
    return 0
