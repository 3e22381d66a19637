"""Recovery from a lost worker and a hung model server: real worker processes, redis-server, the app over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from plugin.ai_review import PENDING_SUMMARY, UNAVAILABLE_SUMMARY
from tests.support import governance_corpus as corpus
from tests.support import sglang_stand_in as sglang
from tests.support.redis_server import RedisHandle, running_redis
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
from workers.app import create_celery
from workers.semaphore import ModelSlots, mark_stalled
from workers.settings import ReviewSettings
from workers.wiring import model_readiness

pytestmark = pytest.mark.integration

SLACK_S = 6.0  # a worker's start, one review and the hook round trips, on a loaded machine
ORDER_DRAFT = "MedicationRequest/draft-197805"


@dataclass
class Stack:
    redis: RedisHandle
    model: sglang.SGLangStandIn
    settings: ReviewSettings
    api_url: str
    client: httpx.Client


@contextlib.contextmanager
def stack(model: sglang.SGLangStandIn, **overrides: Any) -> Iterator[Stack]:
    """Redis, the stand-in, the API; the test starts (and kills) its workers. Derived visibility timeout."""
    with (
        running_redis() as server,
        sglang.running_sglang(model),
        httpx.Client(timeout=30) as client,
    ):
        settings = review_settings(
            server.url, model.url, model.model_name, **{"visibility_timeout_s": None, **overrides}
        )
        with serve_review_api(settings) as api:
            yield Stack(server, model, settings, api.url, client)


def cards(stack: Stack, hook: tuple[str, Any]) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = post(stack.client, stack.api_url, *hook)[0]["cards"]
    return cards


def summaries(found: list[dict[str, Any]]) -> list[str]:
    return [card["summary"] for card in found]


def status_link(found: list[dict[str, Any]]) -> str:
    [pending] = [card for card in found if card["summary"] == PENDING_SUMMARY]
    url: str = pending["links"][0]["url"]
    return url


def readyz(stack: Stack) -> tuple[int, str]:
    response = stack.client.get(f"{stack.api_url}/readyz")
    return response.status_code, response.json()["checks"]["model"]


def sweep_s(settings: ReviewSettings) -> int:
    """How often a worker looks for tasks a dead worker held (the product's broker setting)."""
    interval: int = create_celery(settings).conf.broker_transport_options["unacked_restore_interval"]
    return interval


def test_a_review_lost_with_its_worker_is_redelivered_after_the_derived_visibility_timeout() -> None:
    model = stand_in()
    model.push(sglang.hang())  # the first worker's request: it dies waiting on it
    model.default = sglang.ok(clean_answer(), delay_s=0.2)
    with stack(model, model_timeout_s=2.0, task_soft_limit_s=3, task_hard_limit_s=4, task_max_retries=1) as s:
        visibility = s.settings.visibility_s
        assert visibility == 4 + 30, (
            "derived from the task limit and the model timeout, not a fixed half hour"
        )
        # Swept back within seconds of the timeout (kombu sweeps every 100 s by default, and our sweep was
        # half a visibility timeout): "in progress" lasts the timeout, plus a few seconds, then it runs.
        assert sweep_s(s.settings) <= 5
        bound_s = visibility + 5 + SLACK_S
        hook = hook_request("patient-view")
        with running_worker(s.settings) as first:
            status_url = status_link(cards(s, hook))
            wait_for(lambda: model.chat_requests == 1, 15, "the first worker's model request")
            taken = time.monotonic()
            first.kill_by_pid()
        with running_worker(s.settings):
            # Not handed out while the timeout runs: a live worker could still be running it.
            assert model.chat_requests == 1
            page = s.client.get(status_url)
            assert page.status_code == 200 and "AI review in progress" in page.text
            assert PENDING_SUMMARY in summaries(cards(s, hook)), "the card says it is still coming"
            wait_for(lambda: "Review complete." in s.client.get(status_url).text, bound_s, "the redelivery")
            elapsed = time.monotonic() - taken
            found = cards(s, hook)
    assert visibility - 2 <= elapsed <= bound_s, elapsed
    assert model.chat_requests == 2
    assert "Consider checking the INR" in summaries(found)
    assert PENDING_SUMMARY not in summaries(found)


@dataclass
class ReadyzSampler:
    """GET /readyz back to back in a thread: (when the call started, status code, model state)."""

    stack: Stack
    samples: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ReadyzSampler:
        self._thread = threading.Thread(target=self._run, name="readyz-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                response = client.get(f"{self.stack.api_url}/readyz")
                self.samples.append((started, response.status_code, response.json()["checks"]["model"]))


def test_a_hung_model_reads_busy_through_timeouts_and_retries_and_the_review_fails_honestly() -> None:
    """Each attempt times out and frees its slot; between attempts, and after the last, nothing of ours is
    in flight, yet the server is the same hung one: /readyz stays 200 with the model check busy."""
    model = stand_in()
    model.default = sglang.hang()
    model.probes_hang = True
    with stack(
        model,
        model_timeout_s=1.5,
        task_soft_limit_s=6,
        task_hard_limit_s=8,
        task_max_retries=2,
        model_slots=1,
    ) as s:
        hook = hook_request("patient-view")
        with running_worker(s.settings), ReadyzSampler(s) as sampler:
            status_url = status_link(cards(s, hook))
            wait_for(lambda: model.chat_requests >= 1, 15, "the first attempt")
            first_request = time.monotonic()
            # Three attempts of 1.5 s, 1 s and 2 s of backoff between them: the review is stored failed.
            wait_for(lambda: "could not" in s.client.get(status_url).text, 20, "the review to fail")
            failed_at = time.monotonic()
            wait_for(lambda: sum(1 for t, *_ in sampler.samples if t > failed_at) >= 2, 10, "later samples")
        found = cards(s, hook)
    after = [(status, state) for started, status, state in sampler.samples if started >= first_request]
    assert len(after) >= 4
    assert set(after) == {(200, "busy")}, after
    assert model.chat_requests >= s.settings.task_max_retries + 1
    assert UNAVAILABLE_SUMMARY in summaries(found), "the card says the review failed, not that it is coming"


def test_a_dead_workers_slot_reads_busy_past_the_model_timeout_and_comes_back_when_its_lease_ends() -> None:
    model = stand_in()
    model.default = sglang.hang()
    model.probes_hang = True
    # One slot; a task may wait for it longer than a lease (soft limit / 2), and is not redelivered here.
    with stack(
        model,
        model_timeout_s=1.5,
        task_soft_limit_s=80,
        task_hard_limit_s=90,
        task_max_retries=0,
        model_slots=1,
    ) as s:
        lease_s = s.settings.model_lease_s
        with redis.Redis.from_url(s.redis.url, socket_timeout=5) as client:
            slots = ModelSlots(client, 1)
            with running_worker(s.settings) as first:
                cards(s, hook_request("patient-view"))
                wait_for(lambda: model.chat_requests == 1, 15, "the first worker's model request")
                first.kill_by_pid()
            [(_, expiry_ms)] = client.zrange(keys.MODEL_SLOTS, 0, -1, withscores=True)
            time.sleep(s.settings.model_timeout_s + 0.5)
            # Past the model timeout the dead worker's lease still stands, and the server still hangs.
            assert slots.in_use() == 1
            assert readyz(s) == (200, "busy")
            model.default = sglang.ok(clean_answer(), delay_s=0.2)
            model.probes_hang = False
            drafts = corpus.drafts_bundle([corpus.draft_order(*corpus.IBUPROFEN)])
            order = hook_request("order-select", drafts, selections=(ORDER_DRAFT,))
            with running_worker(s.settings):
                cards(s, order)  # a review of another chart state: a new task, waiting for the one slot
                wait_for(lambda: model.chat_requests == 2, lease_s + SLACK_S, "a new review to start")
                started_ms = server_ms(client)
                wait_for(lambda: PENDING_SUMMARY not in summaries(cards(s, order)), 20, "the new review")
    assert started_ms >= expiry_ms, "not before the dead holder's lease ended"
    assert started_ms <= expiry_ms + SLACK_S * 1000


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_stall_mark_keeps_a_silent_server_busy_for_one_lease(redis_server: RedisHandle) -> None:
    """The readiness half of the above, quickly: silence with a fresh stall mark is busy, then down."""
    url = redis_server.url.rsplit("/", 1)[0] + "/12"
    key = f"test:stalled:{uuid.uuid4().hex}"
    model = stand_in()
    model.probes_hang = True
    api = aioredis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
    try:
        with sglang.running_sglang(model), redis.Redis.from_url(url, socket_timeout=5) as client:
            settings = ReviewSettings(model_backend="sglang", model_url=model.url, redis_url=url)
            # A short probe: the mark's lease need only outlast one check.
            check = dataclasses.replace(model_readiness(settings, api, stalled_key=key), probe_timeout_s=0.3)
            assert await check() == "down", "silent, and nothing of ours in flight or timed out lately"
            mark_stalled(client, 0.8, key=key)
            assert await check() == "busy"
            await asyncio.sleep(0.9)
            assert await check() == "down", "the mark lasts one lease"
    finally:
        await api.aclose()
