"""The review task: two ids in, one governed review stored under the fingerprint (workers.runtime does it)."""

from __future__ import annotations

import logging
import threading

import redis
from celery import Task, shared_task

from workers import keys
from workers.audit_store import AuditStore, anchor_log, database_url, migrate
from workers.runtime import ReviewRuntime, model_factory
from workers.settings import ReviewSettings

log = logging.getLogger(__name__)

_runtime: ReviewRuntime | None = None
_runtime_lock = threading.Lock()


def runtime_for(task: Task) -> ReviewRuntime:
    """The process's runtime, built on first use (after the worker forked), from the app's settings."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            settings: ReviewSettings = task.app.conf.r1cds_settings
            client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
            _runtime = ReviewRuntime(settings, client, model_factory(settings), audit=audit_store(settings))
        return _runtime


def audit_store(settings: ReviewSettings) -> AuditStore | None:
    """The audit chain this process appends its runs to, migrated once (here, once per process).

    None, with a warning, when the URL is unusable: the reviews go on without their audit records. A
    database that is down at start is kept: each write that fails is logged, and the writes resume when
    it is back (migrated by whichever process reaches it first, or `r1cds audit migrate`).
    """
    url = database_url(settings.audit_database_url)
    anchor = anchor_log(settings)  # raises: a worker with a broken audit anchor does not start
    try:
        store = AuditStore(url, anchor)
    except Exception as exc:
        log.warning("audit store unusable; reviews run without audit records (%s)", type(exc).__name__)
        return None
    try:
        migrate(url)
    except Exception as exc:
        log.warning("the audit database could not be migrated at start (%s)", type(exc).__name__)
    return store


@shared_task(  # type: ignore[untyped-decorator]
    name=keys.REVIEW_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None
)
def review(self: Task, fingerprint: str, service_id: str) -> str:
    runtime = runtime_for(self)
    try:
        result = runtime.run(fingerprint, service_id, self.request.id or "", self.request.retries)
    except Exception:
        # A bug, not a model failure: free the fingerprint so the next hook can enqueue it again.
        log.exception("review task failed")
        runtime.release(fingerprint)
        raise
    if result.retry_in_s is not None:
        raise self.retry(countdown=result.retry_in_s)
    return result.state
