"""RedisReviewBroker and ReadyListener against a real redis-server, with a recording fake enqueue."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from inference.parsing import parse_sample
from inference.prompts import build_prompt
from plugin import codec
from plugin.ai_review import BUSY_SUMMARY, BrokerUnavailable, ReviewTicket, Urgency
from plugin.catalog import CHART_REVIEW
from plugin.governance import GovernancePolicy
from plugin.model_port import ModelTimeout, Sample, ScriptedModel
from plugin.review import ReviewOutcome, ReviewService
from tests.support import governance_corpus as corpus
from tests.support.asgi_server import unused_loopback_url
from tests.support.redis_server import RedisHandle, running_redis
from tests.support.review_stack import hook_request, post, review_settings, serve_review_api
from workers import keys
from workers.broker import ReadyListener, RedisReviewBroker
from workers.settings import ReviewSettings

pytestmark = pytest.mark.integration

SERVICE = CHART_REVIEW.id
RULE_TOPIC = "rule.inr-monitoring"  # the corpus chart takes warfarin with no INR on file
CONNECT_DEADLINE_S = 5.0
RECONNECT_DEADLINE_S = 15.0  # the listener backs off up to a few seconds between attempts


@dataclass
class RecordingEnqueue:
    """The broker's enqueue port: records each call; can be told to fail."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    fail_with: Exception | None = None
    sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, fingerprint: str, service_id: str, queue: str) -> None:
        await asyncio.sleep(0)  # a real send yields to the loop; let concurrent callers interleave
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((fingerprint, service_id, queue))
        self.sent.set()


@dataclass
class Harness:
    redis: RedisHandle
    settings: ReviewSettings
    store: aioredis.Redis
    listener: ReadyListener
    enqueue: RecordingEnqueue
    broker: RedisReviewBroker
    sync: redis.Redis


def settings_for(url: str, **overrides: Any) -> ReviewSettings:
    return ReviewSettings(
        redis_url=url,
        model_backend="sglang",
        model_url="http://sglang.test.invalid:30000",
        model_name="deepseek-r1-test",
        **overrides,
    )


@contextlib.asynccontextmanager
async def harness(handle: RedisHandle, **overrides: Any) -> AsyncIterator[Harness]:
    """The broker as workers.wiring assembles it (same client options), with a fake enqueue."""
    settings = settings_for(handle.url, **overrides)
    store = aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    listener_redis = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=settings.redis_timeout_s, health_check_interval=15
    )
    listener = ReadyListener(listener_redis)
    enqueue = RecordingEnqueue()
    broker = RedisReviewBroker(store, listener, enqueue, settings)
    sync = redis.Redis.from_url(handle.url, socket_timeout=5)
    listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), CONNECT_DEADLINE_S)
        yield Harness(handle, settings, store, listener, enqueue, broker, sync)
    finally:
        await listener.stop()
        await store.aclose()
        await listener_redis.aclose()
        sync.close()


@pytest.fixture(autouse=True)
def no_caller_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from these tests alone, never from the caller's R1CDS_* variables."""
    for name in list(os.environ):
        if name.startswith("R1CDS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def redis_handle() -> Iterator[RedisHandle]:
    """A redis-server of this test's own: some tests stop and restart it."""
    with running_redis() as handle:
        yield handle


@pytest.fixture
async def h(redis_handle: RedisHandle) -> AsyncIterator[Harness]:
    async with harness(redis_handle) as built:
        yield built


def ticket(urgency: Urgency = "patient-view") -> ReviewTicket:
    """The corpus chart's context under a fingerprint of this test's own."""
    return ReviewTicket(f"fp-{uuid.uuid4().hex}", SERVICE, urgency, corpus.built().context)


def review_service(samples: int = 1, model: ScriptedModel | None = None) -> ReviewService:
    return ReviewService(
        model or ScriptedModel(),
        build_prompt,
        parse_sample,
        corpus.knowledge(),
        GovernancePolicy(),
        samples=samples,
    )


@functools.cache
def ready_outcome() -> ReviewOutcome:
    answer = json.dumps(corpus.answer(corpus.clean_inr()))
    return review_service().review_recorded(SERVICE, corpus.built(), [Sample(answer, None, "stop")])


def store_result(client: redis.Redis, fingerprint: str, review_id: str, raw: bytes) -> None:
    """What a worker does when a review lands (workers.runtime): the result hash, then the notification."""
    client.hset(keys.result_key(fingerprint), mapping={"outcome": raw, "review_id": review_id})
    client.expire(keys.result_key(fingerprint), 600)
    client.delete(keys.lock_key(fingerprint))
    client.publish(keys.READY_CHANNEL, fingerprint)


async def poll(predicate: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_ready_outcome_is_a_governed_accepted_review() -> None:
    outcome = ready_outcome()
    assert not outcome.failed
    assert outcome.decision is not None
    assert [s.suggestion.summary for s in outcome.decision.accepted] == ["Consider checking the INR"]


async def test_twenty_concurrent_obtains_enqueue_once_and_share_one_review_id(h: Harness) -> None:
    t = ticket()
    statuses = await asyncio.gather(*(h.broker.obtain(t, 0.3) for _ in range(20)))
    assert h.enqueue.calls == [(t.fingerprint, SERVICE, keys.QUEUE_OF["patient-view"])]
    assert {s.state for s in statuses} == {"pending"}
    review_ids = {s.review_id for s in statuses}
    assert len(review_ids) == 1
    [review_id] = review_ids
    assert review_id
    # The lock holds the review id; the context waits for the worker; the status page id maps back.
    assert h.sync.get(keys.lock_key(t.fingerprint)) == review_id.encode()
    assert 0 < h.sync.ttl(keys.lock_key(t.fingerprint)) <= h.settings.lock_ttl_s
    stored = h.sync.get(keys.context_key(t.fingerprint))
    assert isinstance(stored, bytes)
    assert codec.decode_context(stored) == t.context
    assert h.sync.get(keys.review_key(review_id)) == t.fingerprint.encode()
    # A later hook for the same chart joins the review in flight.
    again = await h.broker.obtain(t, 0)
    assert (again.state, again.review_id) == ("pending", review_id)
    assert len(h.enqueue.calls) == 1


async def test_tickets_go_to_their_urgency_queue(h: Harness) -> None:
    for urgency, queue in keys.QUEUES:
        t = ticket(urgency)
        await h.broker.obtain(t, 0)
        assert h.enqueue.calls[-1] == (t.fingerprint, SERVICE, queue)
    assert len(h.enqueue.calls) == 4


async def test_a_stored_result_wakes_the_waiter_before_its_wait_ends(h: Harness) -> None:
    t = ticket()
    wait_s = 10.0
    waiter = asyncio.create_task(h.broker.obtain(t, wait_s))
    await asyncio.wait_for(h.enqueue.sent.wait(), CONNECT_DEADLINE_S)
    review_id = h.sync.get(keys.lock_key(t.fingerprint))
    assert isinstance(review_id, bytes)
    outcome = ready_outcome()
    published = time.monotonic()
    store_result(h.sync, t.fingerprint, review_id.decode(), codec.encode_outcome(outcome))
    status = await asyncio.wait_for(waiter, wait_s + 5)
    woke_after = time.monotonic() - published
    assert woke_after < 1.0, f"the waiter returned {woke_after:.2f} s after the notification"
    assert status.state == "ready"
    assert status.review_id == review_id.decode()
    assert status.outcome == outcome
    # The next hook is a cache hit: no wait, no second enqueue.
    started = time.monotonic()
    cached = await h.broker.obtain(t, wait_s)
    assert time.monotonic() - started < 1.0
    assert (cached.state, cached.outcome) == ("ready", outcome)
    assert len(h.enqueue.calls) == 1


async def test_a_stored_failure_is_reported_as_failed(h: Harness) -> None:
    t = ticket()
    failed = await review_service(model=ScriptedModel([ModelTimeout("no answer")])).review(
        SERVICE, corpus.built(), None
    )
    assert failed.failed
    store_result(h.sync, t.fingerprint, "rid-failed", codec.encode_outcome(failed))
    status = await h.broker.obtain(t, 1.0)
    assert (status.state, status.review_id) == ("failed", "rid-failed")
    assert status.outcome == failed
    assert h.enqueue.calls == []


async def test_a_full_queue_answers_busy_enqueues_nothing_and_leaves_no_lock(
    redis_handle: RedisHandle,
) -> None:
    async with harness(redis_handle, queue_max_depth=3) as h:
        queue = keys.QUEUE_OF["patient-view"]
        h.sync.lpush(queue, *[f"dummy-{n}" for n in range(3)])
        t = ticket()
        started = time.monotonic()
        status = await h.broker.obtain(t, 5.0)
        assert time.monotonic() - started < 1.0, "busy answers at once, without waiting"
        assert (status.state, status.review_id, status.outcome) == ("busy", "", None)
        assert h.enqueue.calls == []
        assert h.sync.exists(keys.lock_key(t.fingerprint)) == 0
        assert h.sync.exists(keys.context_key(t.fingerprint)) == 0
        assert h.sync.llen(queue) == 3
        # Depth is per queue: a more urgent hook still gets its review.
        urgent = ticket("order-sign")
        assert (await h.broker.obtain(urgent, 0)).state == "pending"
        assert h.enqueue.calls == [(urgent.fingerprint, SERVICE, keys.QUEUE_OF["order-sign"])]
        # Once the queue drains below the limit, the busy chart is enqueued.
        h.sync.rpop(queue)
        assert (await h.broker.obtain(t, 0)).state == "pending"
        assert h.enqueue.calls[-1] == (t.fingerprint, SERVICE, queue)


async def test_concurrent_hooks_over_the_cap_admit_exactly_the_cap(redis_handle: RedisHandle) -> None:
    """The depth check and the enqueue are one atomic step: 50 charts at once against a cap of 10."""
    async with harness(redis_handle, queue_max_depth=10) as h:
        queue = keys.QUEUE_OF["patient-view"]

        async def send(fingerprint: str, service_id: str, queue: str) -> None:
            # As workers.publish does: the task lands in the queue's list, after a few round trips.
            await asyncio.sleep(0.01)
            await h.store.lpush(queue, fingerprint)
            h.enqueue.calls.append((fingerprint, service_id, queue))

        broker = RedisReviewBroker(h.store, h.listener, send, h.settings)
        statuses = await asyncio.gather(*(broker.obtain(ticket(), 0) for _ in range(50)))
        states = [s.state for s in statuses]
        assert (states.count("pending"), states.count("busy")) == (10, 40)
        assert len(h.enqueue.calls) == 10
        assert h.sync.llen(queue) == 10
        # Every admission was given back once its task was sent: the queue alone holds the places.
        assert h.sync.zcard(keys.admitting_key(queue)) == 0
        assert (await broker.obtain(ticket(), 0)).state == "busy"
        h.sync.rpop(queue)
        assert (await broker.obtain(ticket(), 0)).state == "pending"


async def test_an_admission_whose_send_never_returned_expires(redis_handle: RedisHandle) -> None:
    async with harness(redis_handle, queue_max_depth=1) as h:
        queue = keys.QUEUE_OF["patient-view"]
        # An API process died between its admission and its send: the place is held, then given back.
        seconds, micros = h.sync.time()
        h.sync.zadd(keys.admitting_key(queue), {"dead": seconds * 1000 + micros // 1000 + 300})
        assert (await h.broker.obtain(ticket(), 0)).state == "busy"
        await asyncio.sleep(0.4)
        assert (await h.broker.obtain(ticket(), 0)).state == "pending"


async def test_an_enqueue_that_raises_is_broker_unavailable_and_frees_the_lock(h: Harness) -> None:
    h.enqueue.fail_with = ConnectionError("broker down")
    t = ticket()
    with pytest.raises(BrokerUnavailable, match="could not enqueue the review: ConnectionError"):
        await h.broker.obtain(t, 1.0)
    assert h.sync.exists(keys.lock_key(t.fingerprint)) == 0
    # The next hook can try again.
    h.enqueue.fail_with = None
    status = await h.broker.obtain(t, 0)
    assert status.state == "pending"
    assert h.enqueue.calls == [(t.fingerprint, SERVICE, keys.QUEUE_OF["patient-view"])]
    assert h.sync.get(keys.lock_key(t.fingerprint)) == status.review_id.encode()


async def test_status_of_pending_ready_and_unknown_reviews(h: Harness) -> None:
    t = ticket()
    pending = await h.broker.obtain(t, 0)
    assert pending.state == "pending"
    status = await h.broker.status(pending.review_id)
    assert status is not None
    assert (status.state, status.review_id, status.outcome) == ("pending", pending.review_id, None)
    outcome = ready_outcome()
    store_result(h.sync, t.fingerprint, pending.review_id, codec.encode_outcome(outcome))
    status = await h.broker.status(pending.review_id)
    assert status is not None
    assert (status.state, status.review_id, status.outcome) == ("ready", pending.review_id, outcome)
    assert await h.broker.status("no-such-review") is None
    assert await h.broker.status("") is None


async def test_an_unreadable_stored_result_is_treated_as_absent(h: Harness) -> None:
    t = ticket()
    h.sync.hset(
        keys.result_key(t.fingerprint), mapping={"outcome": b"\x00not an outcome", "review_id": "old"}
    )
    status = await h.broker.obtain(t, 0.2)
    assert status.state == "pending"
    assert status.outcome is None
    assert h.enqueue.calls == [(t.fingerprint, SERVICE, keys.QUEUE_OF["patient-view"])]
    again = await h.broker.status(status.review_id)
    assert again is not None and again.state == "pending"
    # Another codec version or kind is as unreadable as garbage.
    other = ticket()
    context_bytes = codec.encode_context(other.context)  # a context where an outcome belongs
    h.sync.hset(keys.result_key(other.fingerprint), mapping={"outcome": context_bytes, "review_id": "x"})
    assert (await h.broker.obtain(other, 0)).state == "pending"


async def test_redis_stopped_is_broker_unavailable_quickly(h: Harness) -> None:
    pending = await h.broker.obtain(ticket(), 0)
    h.redis.stop()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="review store unreachable"):
        await h.broker.obtain(ticket(), 5.0)
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="review store unreachable"):
        await h.broker.status(pending.review_id)
    assert time.monotonic() - started < 1.0
    assert len(h.enqueue.calls) == 1


async def test_the_listener_reconnects_after_redis_restarts(h: Harness) -> None:
    port = h.redis.port
    h.redis.stop()
    await poll(lambda: not h.listener.connected.is_set(), "the listener to notice the outage", 5.0)
    with running_redis(port=port), redis.Redis.from_url(f"redis://127.0.0.1:{port}/0") as sync:
        await asyncio.wait_for(h.listener.connected.wait(), RECONNECT_DEADLINE_S)
        t = ticket()
        waiter = asyncio.create_task(h.broker.obtain(t, 10.0))
        await asyncio.wait_for(h.enqueue.sent.wait(), CONNECT_DEADLINE_S)
        review_id = sync.get(keys.lock_key(t.fingerprint))
        assert isinstance(review_id, bytes)
        published = time.monotonic()
        store_result(sync, t.fingerprint, review_id.decode(), codec.encode_outcome(ready_outcome()))
        status = await asyncio.wait_for(waiter, 15.0)
        assert time.monotonic() - published < 1.0
        assert status.state == "ready"


def test_full_queue_over_http_answers_rules_and_a_card_saying_nothing_was_queued() -> None:
    with running_redis() as handle, redis.Redis.from_url(handle.url, socket_timeout=5) as sync:
        settings = review_settings(handle.url, unused_loopback_url(), "deepseek-r1-test", queue_max_depth=1)
        queue = keys.QUEUE_OF["patient-view"]
        sync.lpush(queue, "dummy")
        # No worker runs: the dummy item stays, and the queue stays full.
        with serve_review_api(settings) as api, httpx.Client(timeout=30) as client:
            service, request = hook_request("patient-view")
            body, elapsed = post(client, api.url, service, request)
        assert elapsed < settings.sync_budget_s
        topics = {card["source"].get("topic", {}).get("code", "") for card in body["cards"]}
        assert RULE_TOPIC in topics
        [card] = [card for card in body["cards"] if card["summary"] == BUSY_SUMMARY]
        assert card["indicator"] == "info"
        assert card["source"]["topic"]["code"] == "busy"
        assert "No AI review of this chart was queued" in card["detail"]
        assert "in progress" not in card["detail"]
        assert "links" not in card or not card["links"]  # no review was issued, so no status page
        assert sync.lrange(queue, 0, -1) == [b"dummy"]
        assert list(sync.scan_iter(match=f"{keys.PREFIX}:lock:*")) == []
        assert list(sync.scan_iter(match=f"{keys.PREFIX}:context:*")) == []
        assert list(sync.scan_iter(match=f"{keys.PREFIX}:review:*")) == []
