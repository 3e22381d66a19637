"""The metrics' names and label sets (cds_hooks.metrics, workers.metrics), and what one review counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest

from cds_hooks import metrics as api
from cds_hooks.handlers import AI_OUTCOMES
from plugin.audit import HookOutcome
from plugin.governance.model import Decision, Reason, Rejection
from plugin.model_port import Usage
from plugin.retrieval import Retrieval
from plugin.review import ReviewOutcome, ReviewStep
from workers import metrics as worker

pytestmark = pytest.mark.unit


def test_names_are_prefixed_and_the_edges_do_not_collide() -> None:
    assert all(name.startswith("r1cds_") for name in (*api.LABELS, *worker.LABELS))
    assert set(api.LABELS).isdisjoint(worker.LABELS)


def test_label_sets() -> None:
    assert api.LABELS == {
        "r1cds_hook_seconds": ("service", "hook", "outcome"),
        "r1cds_answer_cache": ("result",),
        "r1cds_feedback": ("service", "outcome"),
        "r1cds_audit_records_lost": ("cause",),
        "r1cds_queue_depth": ("queue",),
        "r1cds_model_requests_in_flight": (),
    }
    assert worker.LABELS == {
        "r1cds_model_seconds": ("service",),
        "r1cds_model_tokens": ("kind",),
        "r1cds_reviews": ("service", "outcome"),
        "r1cds_governance_rejections": ("reason",),
    }


def test_hook_outcomes_are_the_audit_outcomes() -> None:
    # "error" is the audit's, for calls refused before an answer: those are not observed.
    assert {"rules-only", *AI_OUTCOMES.values()} == set(get_args(HookOutcome)) - {"error"}


@dataclass
class Child:
    calls: list[tuple[str, float]] = field(default_factory=list)

    def inc(self, amount: float = 1.0) -> None:
        self.calls.append(("inc", amount))

    def observe(self, amount: float) -> None:
        self.calls.append(("observe", amount))


@dataclass
class FakeMetric:
    """Records the label values each sample was given, as prometheus_client's `labels()` takes them."""

    labelnames: tuple[str, ...]
    children: dict[tuple[str, ...], Child] = field(default_factory=dict)

    def labels(self, *values: str) -> Child:
        assert len(values) == len(self.labelnames), (values, self.labelnames)
        return self.children.setdefault(values, Child())


def fake_worker_metrics() -> Any:
    metrics: Any = object.__new__(worker._WorkerMetrics)
    metrics.model = FakeMetric(worker.LABELS[worker.MODEL_SECONDS])
    metrics.tokens = FakeMetric(worker.LABELS[worker.MODEL_TOKENS])
    metrics.reviews = FakeMetric(worker.LABELS[worker.REVIEWS])
    metrics.rejections = FakeMetric(worker.LABELS[worker.REJECTIONS])
    return metrics


def outcome(*, accepted: int, failed: bool = False, recorded: bool = False) -> ReviewOutcome:
    decision = Decision(
        accepted=(object(),) * accepted,  # type: ignore[arg-type]  # only counted
        rejected=(
            Rejection(0, None, Reason.NOT_OK_OUTPUT, "invalid_json"),
            Rejection(1, 0, Reason.SAFETY_VETO, "veto"),
            Rejection(2, 0, Reason.SAFETY_VETO, "veto"),
        ),
        abstained=accepted == 0,
        abstain_reason=None,
        log=(),
    )
    return ReviewOutcome(
        service_id="r1-chart-review",
        failed=failed,
        decision=None if failed else decision,
        retrieval=Retrieval((), (), 0),
        prompt=None,
        model=None,
        usage=None if failed else Usage(1200, 300, 250, None),
        request_id=None,
        samples=(),
        steps=(ReviewStep("retrieval", True, "", 0.01), ReviewStep("model", not failed, "", 12.5)),
        recorded=recorded,
    )


def test_one_accepted_review_counts_its_outcome_time_tokens_and_rejections() -> None:
    metrics = fake_worker_metrics()
    worker._record(metrics, outcome(accepted=1))
    assert metrics.reviews.children == {("r1-chart-review", "accepted"): Child([("inc", 1.0)])}
    assert metrics.model.children == {("r1-chart-review",): Child([("observe", 12.5)])}
    assert {k: c.calls for k, c in metrics.tokens.children.items()} == {
        ("prompt",): [("inc", 1200)],
        ("completion",): [("inc", 300)],
        ("reasoning",): [("inc", 250)],
    }
    assert {k: len(c.calls) for k, c in metrics.rejections.children.items()} == {
        ("not-ok-output",): 1,
        ("safety-veto",): 2,
    }
    assert {k[0] for k in metrics.tokens.children} <= set(worker.TOKEN_KINDS)
    assert {str(r) for r in Reason} >= {k[0] for k in metrics.rejections.children}


@pytest.mark.parametrize(
    ("accepted", "failed", "expected"), [(1, False, "accepted"), (0, False, "abstained"), (0, True, "failed")]
)
def test_review_outcomes(accepted: int, failed: bool, expected: str) -> None:
    assert worker.review_outcome(outcome(accepted=accepted, failed=failed)) == expected
    assert expected in worker.REVIEW_OUTCOMES


def test_a_failed_review_counts_no_tokens_and_a_recorded_one_no_model_time() -> None:
    metrics = fake_worker_metrics()
    worker._record(metrics, outcome(accepted=0, failed=True))
    assert metrics.tokens.children == {} and metrics.rejections.children == {}
    assert list(metrics.reviews.children) == [("r1-chart-review", "failed")]
    recorded = fake_worker_metrics()
    worker._record(recorded, outcome(accepted=1, recorded=True))
    assert recorded.model.children == {}


def test_record_functions_do_nothing_until_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_metrics", None)
    monkeypatch.setattr(worker, "_metrics", None)
    api.observe_hook("s", "patient-view", "rules-only", 0.01)
    api.count_answer_cache(hit=True)
    api.count_feedback("s", "accepted")
    worker.record_review(outcome(accepted=1))
    assert not api.enabled() and not worker.enabled()


def test_render_adds_the_scrape_time_gauges(tmp_path: Path) -> None:
    body, content_type = api.render(
        str(tmp_path),
        [
            (api.QUEUE_DEPTH, "depth", [(("r1cds.order-sign",), 3.0), (("r1cds.patient-view",), 0.0)]),
            (api.MODEL_IN_FLIGHT, "in flight", [((), 2.0)]),
        ],
    )
    text = body.decode()
    assert content_type.startswith("text/plain; version=")
    assert 'r1cds_queue_depth{queue="r1cds.order-sign"} 3.0' in text
    assert 'r1cds_queue_depth{queue="r1cds.patient-view"} 0.0' in text
    assert "r1cds_model_requests_in_flight 2.0" in text
