"""`GET /metrics` over the real stack: the API process and a worker process count into one directory.

A scripted scenario, then exact counts: the hook, cache and feedback counts come from the API (this test's
process), the review, model and token counts from the worker (another process): the merge is the proof.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from plugin.ai_review import PENDING_SUMMARY
from tests.support import sglang_stand_in as sglang
from tests.support.redis_server import running_redis
from tests.support.review_stack import (
    clean_answer,
    hook_request,
    post,
    review_settings,
    running_worker,
    serve_review_api,
    stand_in,
    wait_for,
)
from workers import keys

pytestmark = pytest.mark.integration

BUDGET_S = 2.5
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client, api_url: str) -> Samples:
    response = client.get(f"{api_url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Samples]:
    """Cold patient-view (pending), the review lands, the hook twice more (stored review, then the answer
    cache), one accepted feedback on the AI card (sent twice); then one scrape."""
    model = stand_in()
    model.default = sglang.ok(clean_answer(), delay_s=BUDGET_S + 1.0)  # slower than the budget: pending
    with (
        running_redis() as server,
        sglang.running_sglang(model),
        httpx.Client(timeout=30) as client,
    ):
        # Derived visibility timeout: the stack's 4 s is too close to the 3.5 s review to count one request.
        settings = review_settings(
            server.url,
            model.url,
            model.model_name,
            metrics_dir=str(tmp_path),
            model_timeout_s=30.0,
            visibility_timeout_s=None,
        )
        with running_worker(settings), serve_review_api(settings) as api:
            service, request = hook_request("patient-view")
            body, _ = post(client, api.url, service, request)
            assert PENDING_SUMMARY in [card["summary"] for card in body["cards"]]
            store = redis.Redis.from_url(server.url)
            try:
                wait_for(lambda: bool(store.keys(keys.result_key("*"))), 30, "the stored review")
            finally:
                store.close()
            ready, _ = post(client, api.url, service, request)
            again, _ = post(client, api.url, service, request)
            [card] = [c for c in again["cards"] if c["source"]["label"].startswith("R1 CDS AI review (")]
            assert PENDING_SUMMARY not in [c["summary"] for c in ready["cards"]]
            feedback = {
                "feedback": [
                    {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
                ]
            }
            for _ in range(2):  # the EHR retries: stored once, counted once
                response = client.post(f"{api.url}/cds-services/{service}/feedback", json=feedback)
                assert response.status_code == 200, response.text
            yield scrape(client, api.url)


def test_one_scrape_counts_the_api_and_the_worker(scenario: Samples) -> None:
    hook = {"service": "r1-chart-review", "hook": "patient-view"}
    assert value(scenario, "r1cds_hook_seconds_count", **hook, outcome="ai-pending") == 1
    assert value(scenario, "r1cds_hook_seconds_count", **hook, outcome="ai-ready") == 2
    assert value(scenario, "r1cds_hook_seconds_count", **hook, outcome="rules-only") == 0
    assert value(scenario, "r1cds_hook_seconds_bucket", **hook, outcome="ai-pending", le="+Inf") == 1
    # Waited out the budget (less its margin), answered well before the stand-in's reply.
    assert (
        BUDGET_S - 0.5
        < value(scenario, "r1cds_hook_seconds_sum", **hook, outcome="ai-pending")
        < BUDGET_S + 0.5
    )
    assert value(scenario, "r1cds_answer_cache_total", result="miss") == 2
    assert value(scenario, "r1cds_answer_cache_total", result="hit") == 1
    assert value(scenario, "r1cds_feedback_total", service="r1-chart-review", outcome="accepted") == 1
    # From the worker process.
    assert value(scenario, "r1cds_reviews_total", service="r1-chart-review", outcome="accepted") == 1
    assert value(scenario, "r1cds_reviews_total", service="r1-chart-review", outcome="failed") == 0
    assert value(scenario, "r1cds_model_seconds_count", service="r1-chart-review") == 1
    assert value(scenario, "r1cds_model_seconds_sum", service="r1-chart-review") >= BUDGET_S + 1.0
    assert value(scenario, "r1cds_model_tokens_total", kind="prompt") > 0
    assert value(scenario, "r1cds_model_tokens_total", kind="completion") > 0
    # Read from Redis at scrape time: the queue is drained, no model request is in flight.
    for _, queue in keys.QUEUES:
        assert ("r1cds_queue_depth", frozenset({("queue", queue)})) in scenario
        assert value(scenario, "r1cds_queue_depth", queue=queue) == 0
    assert value(scenario, "r1cds_model_requests_in_flight") == 0
