"""Assembles the API process's side of the AI review: Redis clients, notifications, the task publisher, the broker."""

# Readiness of the model server (the "model" check of /readyz) is ok, busy or down. Busy is up but
# saturated: /readyz stays 200 (hooks answer with their rule cards and the pending card, and the review runs
# when the server frees up); down is 503. Each check probes the server once (`probe()` of the adapter,
# within MODEL_PROBE_TIMEOUT_S, under /readyz's own limit per check) and, only when it was silent, counts
# our load on it across all workers (workers.semaphore.pressure): the model requests in flight, plus one
# while a worker's request to it timed out within the last slot lease (workers.semaphore.MODEL_STALLED):
#
#     probe                                         requests in flight     model
#                                                   or timed out lately
#     up                                            any                    ok
#     overloaded (429, or 503 with Retry-After)     any                    busy
#     silent (no answer within the time)            one or more            busy
#     silent                                        none, or unreadable    down
#     unreachable (refused, DNS), failing (5xx...)  any                    down
#
# The timeouts count because a hung server frees our slots itself: each request ends at the model timeout,
# and between a review's attempts (and after its last) nothing of ours is in flight, while the server is
# the same silent one. It stays busy (degraded, 200) for one lease after our last timeout, not down.
#
# What each backend's server does, which the table is built on:
# - llama.cpp (llama-cpp-python, the demo model): decodes one sequence at a time and serves GET /v1/models
#   behind the lock its completions hold, so while it decodes the probe gets no answer. With a review in
#   flight that silence is busy; with none it is a hung server. It answers no 429 or 503 of its own.
# - SGLang: GET /health answers 200 at its first once-a-second check that sees any output since the probe
#   came in, under load too (about 1 s); 503 while it starts, shuts down or when its scheduler has sent
#   nothing for 20 s, which is down, never load. Silence while our requests run: the scheduler held by a
#   long prefill, busy.
# - OpenAI-compatible (vLLM, Ollama, llama.cpp's llama-server, hosted APIs): GET /v1/models comes from the
#   HTTP front end and answers under load. A 429 (rate limit) or a 503 with Retry-After, from a gateway or
#   an API provider, is their overload answer: busy. Older llama-server builds answer 503 "Loading model"
#   (no Retry-After) while the model loads: down. Silence while our requests run: busy, as for the others.
# The count is ours only: a server silent under another client's load, with none of ours in flight and
# none timed out lately, reads as down. A worker killed mid-request leaves its lease live until it expires
# (the model timeout plus workers.settings.LEASE_MARGIN_S; a live holder renews it up to the task's hard
# limit), so a server that hung with it reads as busy that long.

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from inference.openai_compat import OpenAICompatibleModel, ProbeResult
from inference.prompts import service_template
from inference.scripted import load_script_book
from plugin.ai_review import AiReview
from plugin.context.fingerprint import ReviewVersion
from plugin.knowledge import KnowledgeBase
from plugin.model_port import LanguageModel
from workers import keys
from workers.broker import ReadyListener, RedisReviewBroker
from workers.publish import TaskPublisher
from workers.runtime import model_factory
from workers.semaphore import MODEL_STALLED, pressure
from workers.settings import ReviewSettings, model_label

ModelState = Literal["ok", "busy", "down"]  # cds_hooks.health's check states
# /readyz gives each check 2 s (cds_hooks.health.CHECK_TIMEOUT_S): the probe and the count fit inside it, so
# the answer is classified here rather than cut off there. SGLang's /health needs about 1 s.
MODEL_PROBE_TIMEOUT_S: Final = 1.5
IN_FLIGHT_TIMEOUT_S: Final = 0.3


def model_state(probed: ProbeResult, requests_in_flight: int | None) -> ModelState:
    """The table above: what a probe result means, given our model requests in flight (None: unknown)."""
    if probed == "up":
        return "ok"
    if probed == "overloaded" or (probed == "silent" and requests_in_flight):
        return "busy"
    return "down"


@dataclass(frozen=True, slots=True)
class ModelReadiness:
    """The "model" readiness check: ok, busy or down (see the table above). `probe` None: no model server."""

    probe: Callable[[float], Awaitable[ProbeResult]] | None
    in_flight: Callable[[], Awaitable[int]]
    probe_timeout_s: float = MODEL_PROBE_TIMEOUT_S
    in_flight_timeout_s: float = IN_FLIGHT_TIMEOUT_S

    async def __call__(self) -> ModelState:
        if self.probe is None:
            return "down"
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                probed = await self.probe(self.probe_timeout_s)
        except TimeoutError:
            probed = "silent"
        if probed != "silent":
            return model_state(probed, None)
        try:
            async with asyncio.timeout(self.in_flight_timeout_s):
                count = await self.in_flight()
        except (TimeoutError, RedisError, OSError):
            count = None  # nothing shows the silence is load
        return model_state(probed, count)


def model_readiness(
    settings: ReviewSettings, client: aioredis.Redis, *, stalled_key: str = MODEL_STALLED
) -> ModelReadiness:
    """The check for the configured backend, counting our load on the server over `client`."""

    async def count() -> int:
        return await pressure(client, stalled_key=stalled_key)

    try:
        models = model_factory(settings)
    except ValueError:  # no model server configured (R1CDS_MODEL_URL unset) or a malformed URL
        return ModelReadiness(None, count)

    async def probe(timeout_s: float) -> ProbeResult:
        async with models() as model:
            return await probe_model(model, timeout_s)

    return ModelReadiness(probe, count)


async def probe_model(model: LanguageModel, timeout_s: float) -> ProbeResult:
    """The adapter's classified probe; a backend without a server to probe says only whether it answers."""
    if isinstance(model, OpenAICompatibleModel):
        return await model.probe(timeout_s)
    return "up" if await model.ready() else "failing"


def model_id(settings: ReviewSettings) -> str:
    """The model part of a review's fingerprint: backend and model, the script book's version for the scripted
    backend (new scripts are new answers), and the compact profile when it runs (a different review)."""
    name = load_script_book().version if settings.model_backend == "scripted" else settings.model_name
    profile = "+compact" if settings.compact_review else ""
    return f"{settings.model_backend}:{name}{profile}"


def review_version(settings: ReviewSettings, knowledge: KnowledgeBase, service_id: str) -> ReviewVersion:
    """Everything besides the chart that decides a review's answer: part of its fingerprint."""
    template = service_template(service_id)
    return ReviewVersion(
        service_id=service_id,
        prompt_version=f"{template.version}#{template.content_hash}",
        model_id=model_id(settings),
        knowledge_base_version=knowledge.version,
    )


@dataclass
class ApiReviewPath:
    ai: AiReview
    broker: RedisReviewBroker
    budget_s: float
    settings: ReviewSettings
    _redis: aioredis.Redis
    _listener_redis: aioredis.Redis
    _listener: ReadyListener
    _readiness: ModelReadiness

    async def model_ready(self) -> ModelState:
        """The model server's readiness: ok, busy (up but saturated) or down; down when none is configured."""
        return await self._readiness()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Listen for results while the app runs; close every client on the way out."""
        self._listener.start()
        try:
            yield
        finally:
            await self._listener.stop()
            await self._redis.aclose()
            await self._listener_redis.aclose()


def api_review_path(settings: ReviewSettings, public_base: str, knowledge: KnowledgeBase) -> ApiReviewPath:
    # Hook-path commands get the short timeout and no retries: an outage costs one timeout, then rules only.
    store = aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    # The listener blocks on its subscription; it needs no read timeout, only a connect timeout.
    listener_redis = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=settings.redis_timeout_s, health_check_interval=15
    )
    listener = ReadyListener(listener_redis)
    publisher = TaskPublisher(store)  # the hook path's client: short timeout, no retries

    async def enqueue(fingerprint: str, service_id: str, queue: str) -> None:
        await publisher.send(keys.REVIEW_TASK, [fingerprint, service_id], queue)

    broker = RedisReviewBroker(store, listener, enqueue, settings)
    base = public_base.rstrip("/")
    ai = AiReview(
        broker=broker,
        knowledge=knowledge,
        version=lambda service_id: review_version(settings, knowledge, service_id),
        evidence_url=lambda token: f"{base}/evidence/{token}",
        model_label=model_label(settings),
    )
    readiness = model_readiness(settings, store)  # built once: each /readyz only probes
    return ApiReviewPath(
        ai, broker, settings.sync_budget_s, settings, store, listener_redis, listener, readiness
    )
