"""The AI review path end to end: app over HTTP, real redis-server, real Celery worker, SGLang stand-in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from plugin.ai_review import PENDING_SUMMARY, UNAVAILABLE_SUMMARY
from tests.support import governance_corpus as corpus
from tests.support import sglang_stand_in as sglang
from tests.support.redis_server import RedisHandle, running_redis
from tests.support.review_stack import (
    WorkerProcess,
    clean_answer,
    hook_request,
    post,
    review_settings,
    running_worker,
    serve_review_api,
    stand_in,
    wait_for,
)
from workers.settings import ReviewSettings

pytestmark = pytest.mark.integration

BUDGET_S = 2.5
RULE_TOPIC = "rule.inr-monitoring"  # the corpus chart takes warfarin with no INR on file


@dataclass
class Stack:
    redis: RedisHandle
    model: sglang.SGLangStandIn
    settings: ReviewSettings
    worker: WorkerProcess
    api_url: str
    client: httpx.Client


def running_stack(delay_s: float, **overrides: Any) -> Iterator[Stack]:
    model = stand_in()
    model.default = sglang.ok(clean_answer(), delay_s=delay_s)
    with (
        running_redis() as redis,
        sglang.running_sglang(model),
        httpx.Client(timeout=30) as client,
    ):
        settings = review_settings(redis.url, model.url, model.model_name, **overrides)
        with running_worker(settings) as worker, serve_review_api(settings) as api:
            yield Stack(redis, model, settings, worker, api.url, client)


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield from running_stack(0.3)


@pytest.fixture
def slow_model_stack() -> Iterator[Stack]:
    """A model slower than the sync budget, with the visibility timeout derived from a 30 s model timeout:
    the short stack's 4 s would hand the 3.5 s review out again while it runs (a second model request)."""
    yield from running_stack(BUDGET_S + 1.0, model_timeout_s=30.0, visibility_timeout_s=None)


def summaries(body: dict[str, Any]) -> list[str]:
    return [card["summary"] for card in body["cards"]]


def topics(body: dict[str, Any]) -> set[str]:
    return {card["source"].get("topic", {}).get("code", "") for card in body["cards"]}


def ai_cards(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in body["cards"] if c["source"]["label"].startswith("R1 CDS AI review (")]


def test_cold_hook_answers_in_budget_then_the_cached_ai_card(slow_model_stack: Stack) -> None:
    stack = slow_model_stack
    service, request = hook_request("patient-view")
    body, elapsed = post(stack.client, stack.api_url, service, request)
    assert elapsed < BUDGET_S + 0.5
    assert RULE_TOPIC in topics(body)
    pending = [c for c in body["cards"] if c["summary"] == PENDING_SUMMARY]
    assert len(pending) == 1 and pending[0]["indicator"] == "info"
    status_url = pending[0]["links"][0]["url"]
    page = stack.client.get(status_url)
    assert page.status_code == 200 and "AI review in progress" in page.text
    assert 'http-equiv="refresh"' in page.text

    wait_for(lambda: "Review complete." in stack.client.get(status_url).text, 30, "the review to land")
    body, elapsed = post(stack.client, stack.api_url, service, hook_request("patient-view")[1])
    [card] = ai_cards(body)
    assert card["summary"] == "Consider checking the INR"
    assert "deepseek-r1-test" in card["source"]["label"]
    assert card["source"]["url"] == f"{stack.api_url}/about#model"
    assert PENDING_SUMMARY not in summaries(body)
    assert RULE_TOPIC in topics(body)
    assert stack.model.chat_requests == 1
    # The INR order in the card is bound to this caller's patient, though the stored result has none.
    action = card["suggestions"][0]["actions"][0]
    assert action["resource"]["subject"] == {"reference": corpus.PATIENT}


def test_twenty_concurrent_identical_hooks_make_one_model_request(stack: Stack) -> None:
    stack.model.default = sglang.ok(clean_answer(), delay_s=1.0)
    service, request = hook_request("patient-view")
    barrier = threading.Barrier(20)

    def one(_: int) -> dict[str, Any]:
        barrier.wait()
        with httpx.Client(timeout=30) as client:
            return post(client, stack.api_url, service, request)[0]

    with ThreadPoolExecutor(max_workers=20) as pool:
        bodies = list(pool.map(one, range(20)))
    assert all(RULE_TOPIC in topics(b) for b in bodies)
    wait_for(lambda: stack.model.chat_requests >= 1, 15, "the model request")
    body, _ = post(stack.client, stack.api_url, service, request)
    wait_for(lambda: bool(ai_cards(post(stack.client, stack.api_url, service, request)[0])), 15, "AI cards")
    assert stack.model.chat_requests == 1
    assert body["cards"]


def test_order_select_warms_order_sign(stack: Stack) -> None:
    stack.model.default = sglang.ok(clean_answer(), delay_s=0.2)
    drafts = corpus.drafts_bundle([corpus.draft_order(*corpus.IBUPROFEN)])
    service, select = hook_request("order-select", drafts, selections=("MedicationRequest/draft-197805",))
    post(stack.client, stack.api_url, service, select)
    wait_for(lambda: stack.model.chat_requests == 1, 15, "the order review to start")
    _, sign = hook_request("order-sign", drafts)

    def settled() -> bool:
        return PENDING_SUMMARY not in summaries(post(stack.client, stack.api_url, service, sign)[0])

    wait_for(settled, 20, "the order review to land")
    assert stack.model.chat_requests == 1, "order-sign of the same orders is a cache hit"


def test_worker_killed_mid_review_is_redelivered_and_completes(stack: Stack) -> None:
    stack.model.push(sglang.ok(clean_answer(), delay_s=30.0))  # the first attempt hangs in the model
    stack.model.default = sglang.ok(clean_answer(), delay_s=0.2)
    service, request = hook_request("patient-view")
    post(stack.client, stack.api_url, service, request)
    wait_for(lambda: stack.model.chat_requests == 1, 15, "the model request")
    stack.worker.kill()
    with running_worker(stack.settings):
        wait_for(
            lambda: bool(ai_cards(post(stack.client, stack.api_url, service, request)[0])),
            40,
            "the redelivered review",
        )
    assert stack.model.chat_requests == 2


def test_model_errors_are_retried_then_recorded_and_the_hook_still_answers(stack: Stack) -> None:
    stack.model.default = sglang.queue_full()
    service, request = hook_request("patient-view")
    body, _ = post(stack.client, stack.api_url, service, request)
    assert RULE_TOPIC in topics(body)

    def unavailable() -> bool:
        return UNAVAILABLE_SUMMARY in summaries(post(stack.client, stack.api_url, service, request)[0])

    wait_for(unavailable, 40, "the recorded failure")
    body, _ = post(stack.client, stack.api_url, service, request)
    assert RULE_TOPIC in topics(body)
    # Each task attempt retried in the adapter, and the task itself was retried task_max_retries times.
    assert stack.model.chat_requests >= 3


def test_redis_down_gives_rule_cards_and_the_ai_path_resumes_when_it_returns(stack: Stack) -> None:
    service, request = hook_request("patient-view")
    port = stack.redis.port
    stack.redis.stop()
    body, elapsed = post(stack.client, stack.api_url, service, request)
    assert RULE_TOPIC in topics(body)
    assert not [c for c in body["cards"] if "AI review" in c["source"]["label"]]
    assert elapsed < BUDGET_S
    with running_redis(port=port):
        wait_for(
            lambda: bool(ai_cards(post(stack.client, stack.api_url, service, request)[0])),
            40,
            "the AI path to resume",
        )


def test_liveness_and_readiness_name_what_is_down(stack: Stack) -> None:
    ready = stack.client.get(f"{stack.api_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"audit": "ok", "model": "ok", "redis": "ok"}}
    stack.model.healthy = False
    down = stack.client.get(f"{stack.api_url}/readyz")
    assert down.status_code == 503
    assert down.json()["checks"] == {"audit": "ok", "model": "down", "redis": "ok"}
    stack.model.healthy = True
    stack.redis.stop()
    down = stack.client.get(f"{stack.api_url}/readyz")
    assert down.status_code == 503 and down.json()["checks"]["redis"] == "down"
    live = stack.client.get(f"{stack.api_url}/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"}), "rule cards still answer: alive"
