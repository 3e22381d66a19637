"""Assembles the API process's side of the AI review: Redis clients, notifications, the task publisher, the broker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from inference.prompts import service_template
from plugin.ai_review import AiReview
from plugin.context.fingerprint import ReviewVersion
from plugin.knowledge import KnowledgeBase
from workers import keys
from workers.broker import ReadyListener, RedisReviewBroker
from workers.publish import TaskPublisher
from workers.runtime import model_factory
from workers.settings import ReviewSettings


def review_version(settings: ReviewSettings, knowledge: KnowledgeBase, service_id: str) -> ReviewVersion:
    """Everything besides the chart that decides a review's answer: part of its fingerprint."""
    template = service_template(service_id)
    return ReviewVersion(
        service_id=service_id,
        prompt_version=f"{template.version}#{template.content_hash}",
        model_id=f"{settings.model_backend}:{settings.model_name}",
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

    async def model_ready(self) -> bool:
        """The model server answers its health probe (readiness); False when none is configured."""
        if self.settings.model_url is None:
            return False
        async with model_factory(self.settings)() as model:
            return await model.ready()

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
    )
    return ApiReviewPath(ai, broker, settings.sync_budget_s, settings, store, listener_redis, listener)
