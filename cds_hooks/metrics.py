"""Prometheus metrics of the API process, and `GET /metrics`, which serves those of every process.

Several API and worker processes count into one directory (prometheus_client's multiprocess mode: each
process writes its own mmap'ed files under PROMETHEUS_MULTIPROC_DIR); `/metrics` merges every file in it
(MultiProcessCollector) and adds the gauges read at scrape time from Redis (queue depth, in-flight model
requests), which the composition root hands to create_app (`collect_extra`): this edge does not know the
queue layout. The worker's metrics (model latency and tokens, reviews, governance rejections) are
workers.metrics'; every name starts with `r1cds_`.

prometheus_client picks multiprocess mode when its `values` module is imported, from the environment, and
binds a process to the directory its first metric writes to. So nothing here imports prometheus_client
until the composition root (cds_hooks.stack.use_metrics_dir) has set the directory and called `enable`;
until then the record functions below do nothing, and `/metrics` answers 404. Counters and histograms
only: no live gauges, so a dead process needs no `mark_process_dead`, and its counts stay in the totals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

log = logging.getLogger(__name__)

HOOK_SECONDS: Final = "r1cds_hook_seconds"
ANSWER_CACHE: Final = "r1cds_answer_cache"  # exposed as r1cds_answer_cache_total
FEEDBACK: Final = "r1cds_feedback"  # exposed as r1cds_feedback_total
AUDIT_LOST: Final = "r1cds_audit_records_lost"  # exposed as r1cds_audit_records_lost_total
QUEUE_DEPTH: Final = "r1cds_queue_depth"
MODEL_IN_FLIGHT: Final = "r1cds_model_requests_in_flight"
LABELS: Final[dict[str, tuple[str, ...]]] = {
    HOOK_SECONDS: ("service", "hook", "outcome"),
    ANSWER_CACHE: ("result",),
    FEEDBACK: ("service", "outcome"),
    AUDIT_LOST: ("cause",),
    QUEUE_DEPTH: ("queue",),
    MODEL_IN_FLIGHT: (),
}
# From a cached answer (~1 ms) to a hook that waited out its whole sync budget (2.5 s by default, 30 at most).
HOOK_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Scrape-time samples from the composition root: (metric name, help, [(label values, value), ...]).
ExtraGauge = tuple[str, str, list[tuple[tuple[str, ...], float]]]
CollectExtra = Callable[[], Awaitable[Iterable[ExtraGauge]]]


class _ApiMetrics:
    def __init__(self, directory: str) -> None:
        from prometheus_client import Counter, Histogram

        self.directory = directory
        # registry=None: in multiprocess mode a scrape reads the files, never a registry of this process.
        self.hook = Histogram(
            HOOK_SECONDS,
            "Hook calls answered (200), by service, hook and outcome, and their time to answer in seconds",
            LABELS[HOOK_SECONDS],
            buckets=HOOK_BUCKETS,
            registry=None,
        )
        cache = Counter(
            ANSWER_CACHE, "Hook calls looked up in the answer cache", LABELS[ANSWER_CACHE], registry=None
        )
        self.cache_hit, self.cache_miss = cache.labels("hit"), cache.labels("miss")
        self.feedback = Counter(
            FEEDBACK,
            "Card feedback items newly stored, by service and outcome",
            LABELS[FEEDBACK],
            registry=None,
        )
        # Each record the audit trail gave up on, by cause: "backlog" (full), "build" (a record that could
        # not be built), "write" (the sink or store failed: every record of the batch).
        self.audit_lost = Counter(
            AUDIT_LOST,
            "Audit records not stored, one per record, by cause (backlog, build, write)",
            LABELS[AUDIT_LOST],
            registry=None,
        )
        # Label children by label values: the hook path pays a dict lookup, not the library's lock and tuple.
        self._hook_children: dict[tuple[str, str, str], Any] = {}

    def observe_hook(self, service: str, hook: str, outcome: str, seconds: float) -> None:
        key = (service, hook, outcome)
        child = self._hook_children.get(key)
        if child is None:
            child = self._hook_children.setdefault(key, self.hook.labels(*key))
        child.observe(seconds)


_metrics: _ApiMetrics | None = None


def enable(directory: str) -> None:
    """Create this process's metrics, writing under `directory` (already PROMETHEUS_MULTIPROC_DIR)."""
    global _metrics
    if _metrics is None:
        _metrics = _ApiMetrics(directory)
    elif _metrics.directory != directory:
        log.warning("metrics already go to %s in this process; %s is not used", _metrics.directory, directory)


def enabled() -> bool:
    return _metrics is not None


def observe_hook(service: str, hook: str, outcome: str, seconds: float) -> None:
    if _metrics is not None:
        _metrics.observe_hook(service, hook, outcome, seconds)


def count_answer_cache(hit: bool) -> None:
    if _metrics is not None:
        (_metrics.cache_hit if hit else _metrics.cache_miss).inc()


def count_feedback(service: str, outcome: str) -> None:
    if _metrics is not None:
        _metrics.feedback.labels(service, outcome).inc()


def count_audit_lost(cause: str, records: int) -> None:
    """`records` audit records given up on (cause: backlog, build or write)."""
    if _metrics is not None and records > 0:
        _metrics.audit_lost.labels(cause).inc(records)


def render(directory: str, extra: Iterable[ExtraGauge] = ()) -> tuple[bytes, str]:
    """Every process's metrics merged from `directory`, plus the scrape-time gauges: (body, content type)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    families: list[Metric] = []
    for name, help_text, samples in extra:
        family = GaugeMetricFamily(name, help_text, labels=LABELS.get(name, ()))
        for label_values, value in samples:
            family.add_metric(list(label_values), value)
        families.append(family)
    registry.register(_Fixed(families))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Fixed:
    """A collector of metrics already read (the scrape-time gauges)."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Iterable[Any]:
        return self._families


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format. Unauthenticated, like /healthz: counts only, no patient data."""
    if _metrics is None:
        return PlainTextResponse(
            "metrics are off: no metrics directory (R1CDS_METRICS_DIR)\n", status_code=404
        )
    collect: CollectExtra | None = getattr(request.app.state, "collect_extra", None)
    extra: list[ExtraGauge] = []
    if collect is not None:
        try:
            extra = list(await collect())
        except Exception as exc:  # Redis away: serve the counters without the gauges
            log.warning("metrics: scrape-time gauges not read (%s)", type(exc).__name__)
    # Reading and merging every process's files is blocking file work: off the event loop.
    body, content_type = await asyncio.to_thread(render, _metrics.directory, extra)
    return Response(body, media_type=content_type)
