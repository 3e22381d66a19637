"""The Celery app factory: one configuration for the API (which only sends) and the workers (which run)."""

# Choices, each for a failure the EHR must never see:
# - JSON only, on the wire and for results: a task carries two ids, never a pickled object.
# - acks_late + reject_on_worker_lost: a task is acknowledged after it finished, so a worker killed
#   mid-review (SIGKILL, OOM) gives it back; reviews are idempotent (a stored result ends a rerun at once).
# - prefetch multiplier 1: a worker holds only the task it runs; the rest wait where any worker can take them.
# - queues by urgency, consumed in order ("priority" queue order of kombu's Redis transport): order-sign,
#   order-select, encounter, patient-view.
# - visibility timeout (Redis): how long before a task held by a dead worker is handed out again; derived
#   from the model timeout and the task hard limit (ReviewSettings.visibility_s), not a fixed half hour.
#   A killed worker's tasks are handed out by the live workers' sweeps, so a review lost with its worker
#   shows "in progress" for the visibility timeout plus at most one sweep (RESTORE_SWEEP_MAX_S), then
#   runs again; a sweep is one lock and one sorted-set read, cheap enough every few seconds. The sweep's
#   lock expires after RESTORE_MUTEX_S, not kombu's 300 s: a worker killed while sweeping holds it.
# - no Celery result backend: results go to our own store (workers.keys) under the review fingerprint.
# - kombu's Redis transport with one shared client per channel (workers.transport): the stock one builds a
#   Redis client per command, CPU spent between a task arriving and the task starting.
# - publishing never retries for long: the API sends inside a hook's time budget.

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from celery import Celery
from kombu import Exchange, Queue  # type: ignore[attr-defined]

from workers import keys
from workers.settings import ReviewSettings
from workers.transport import Transport

# URL schemes kombu serves with its plain Redis transport (others, e.g. sentinel://, keep kombu's choice).
_REDIS_SCHEMES = frozenset({"redis", "rediss"})
RESTORE_SWEEP_MAX_S: Final = 5  # the longest between two sweeps for a dead worker's tasks, per worker
# A sweep takes milliseconds; its lock outlives a sweeper killed mid-sweep this long.
RESTORE_MUTEX_S: Final = 10


def restore_sweep_s(visibility_s: int) -> int:
    """Seconds between a worker's sweeps for tasks whose worker died: several per visibility timeout."""
    return max(1, min(RESTORE_SWEEP_MAX_S, visibility_s // 4))


def create_celery(settings: ReviewSettings, *, main: str = "r1cds") -> Celery:
    app = Celery(main, broker=settings.redis_url, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_limit_s,
        task_time_limit=settings.task_hard_limit_s,
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for _, name in keys.QUEUES],  # type: ignore[no-untyped-call]
        task_default_queue=keys.QUEUE_OF["patient-view"],
        task_create_missing_queues=False,
        broker_transport_options={
            "visibility_timeout": settings.visibility_s,
            # Sweep for tasks whose worker died every few seconds (kombu's default is a scan every 100 s,
            # whatever the timeout), and never lock the sweeps out for long (kombu's default: 300 s).
            "unacked_restore_interval": restore_sweep_s(settings.visibility_s),
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": RESTORE_MUTEX_S,
            "queue_order_strategy": "priority",
            # Every task is sent at priority 0 (workers.publish): one list per queue, so BRPOP watches 4
            # keys, not kombu's default 4 x 4 priority steps, and the queue-depth check is one LLEN.
            "priority_steps": [0],
            "socket_timeout": 5,
            "socket_connect_timeout": 2,
        },
        broker_transport=Transport if urlsplit(settings.redis_url).scheme in _REDIS_SCHEMES else None,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.1},
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    app.conf.r1cds_settings = settings
    return app
