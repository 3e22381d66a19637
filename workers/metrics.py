"""Prometheus metrics of a worker process: model latency and tokens, reviews, governance rejections.

They are counted into the metrics directory the API shares (prometheus_client's multiprocess mode; see
cds_hooks.metrics, which serves them at the API's `/metrics`). As there, nothing imports prometheus_client
until the composition root (cds_hooks.stack.use_metrics_dir) has set PROMETHEUS_MULTIPROC_DIR and called
`enable`: a worker without a metrics directory counts nothing. A prefork child writes its own files (the
library notices the new pid). Every name starts with `r1cds_`, apart from the API's.

One review, stored, counts once (`record_review`): a cached result or a retried attempt counts nothing,
as it writes no audit record either (workers.runtime).
"""

from __future__ import annotations

import logging
from typing import Final

from plugin.review import ReviewOutcome

log = logging.getLogger(__name__)

MODEL_SECONDS: Final = "r1cds_model_seconds"
MODEL_TOKENS: Final = "r1cds_model_tokens"  # exposed as r1cds_model_tokens_total
REVIEWS: Final = "r1cds_reviews"  # exposed as r1cds_reviews_total
REJECTIONS: Final = "r1cds_governance_rejections"  # exposed as r1cds_governance_rejections_total
LABELS: Final[dict[str, tuple[str, ...]]] = {
    MODEL_SECONDS: ("service",),
    MODEL_TOKENS: ("kind",),
    REVIEWS: ("service", "outcome"),
    REJECTIONS: ("reason",),
}
TOKEN_KINDS: Final = ("prompt", "completion", "reasoning", "cached")
REVIEW_OUTCOMES: Final = ("accepted", "abstained", "failed")
# R1 reasons for tens of seconds; a task's soft limit is 900 s by default.
MODEL_BUCKETS: Final = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0)


class _WorkerMetrics:
    def __init__(self, directory: str) -> None:
        from prometheus_client import Counter, Histogram

        self.directory = directory
        self.model = Histogram(
            MODEL_SECONDS,
            "Model time of one review (every sample), in seconds",
            LABELS[MODEL_SECONDS],
            buckets=MODEL_BUCKETS,
            registry=None,
        )
        self.tokens = Counter(
            MODEL_TOKENS, "Model tokens used by reviews, by kind", LABELS[MODEL_TOKENS], registry=None
        )
        self.reviews = Counter(
            REVIEWS, "Reviews stored, by service and outcome", LABELS[REVIEWS], registry=None
        )
        self.rejections = Counter(
            REJECTIONS,
            "Samples and suggestions governance dropped, by the first check they failed",
            LABELS[REJECTIONS],
            registry=None,
        )


_metrics: _WorkerMetrics | None = None


def enable(directory: str) -> None:
    """Create this process's metrics, writing under `directory` (already PROMETHEUS_MULTIPROC_DIR)."""
    global _metrics
    if _metrics is None:
        _metrics = _WorkerMetrics(directory)
    elif _metrics.directory != directory:
        log.warning("metrics already go to %s in this process; %s is not used", _metrics.directory, directory)


def enabled() -> bool:
    return _metrics is not None


def review_outcome(outcome: ReviewOutcome) -> str:
    """accepted, abstained or failed, as the audit's ai-run record names it (plugin.audit.ai_run_record)."""
    if outcome.failed:
        return "failed"
    decision = outcome.decision
    return "accepted" if decision is not None and decision.accepted else "abstained"


def token_counts(outcome: ReviewOutcome) -> dict[str, int]:
    usage = outcome.usage
    if usage is None:
        return {}
    return {
        "prompt": usage.prompt_tokens,
        "completion": usage.completion_tokens,
        "reasoning": usage.reasoning_tokens or 0,
        "cached": usage.cached_tokens or 0,
    }


def record_review(outcome: ReviewOutcome) -> None:
    """Count one stored review. Never raises: a metric must not fail a task."""
    if _metrics is None:
        return
    try:
        _record(_metrics, outcome)
    except Exception as exc:
        log.warning("review stored, but not counted in the metrics (%s)", type(exc).__name__)


def _record(metrics: _WorkerMetrics, outcome: ReviewOutcome) -> None:
    service = outcome.service_id
    metrics.reviews.labels(service, review_outcome(outcome)).inc()
    model_s = outcome.timings.get("model")
    if model_s is not None and not outcome.recorded:
        metrics.model.labels(service).observe(model_s)
    for kind, count in token_counts(outcome).items():
        if count > 0:
            metrics.tokens.labels(kind).inc(count)
    if outcome.decision is not None:
        for rejection in outcome.decision.rejected:
            metrics.rejections.labels(str(rejection.reason)).inc()
