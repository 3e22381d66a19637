"""The API side of the review queue: cached results, single-flight enqueue and an asynchronous wait, over Redis."""

# obtain(ticket, wait_s), in order:
#   1. register interest in the fingerprint's "ready" notification (before looking, so none is missed);
#   2. a stored result answers at once (ready, or failed while its short TTL lasts);
#   3. SET NX the fingerprint's lock with a fresh review id: the winner looks for a result once more (one
#      may have landed since step 2, its lock already gone), reserves a place under the queue-depth cap
#      (over the limit it drops the lock and answers busy: nothing was queued), stores the context and
#      enqueues one task; a loser reads the winner's review id and joins the wait;
#   4. wait for the notification, at most wait_s, never blocking the event loop; then read the result.
# Any Redis or broker failure raises BrokerUnavailable: the hook answers with its rule cards alone.
#
# The depth cap is one Lua script (_ADMIT), so concurrent hooks never overshoot it: it counts the tasks
# waiting in the queue plus the admissions still being sent (a sorted set scored by expiry, so an API
# process that dies mid-send leaks its place for ADMIT_LEASE_MS at most) and adds ours only below the cap.
# The admission is dropped once the send returns; a task counted twice in between only errs towards busy.
#
# Notifications arrive on one pub/sub channel per process (ReadyListener), dispatched to waiting futures
# by fingerprint; the listener reconnects by itself after a Redis outage.

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Final, Literal

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from plugin import codec
from plugin.ai_review import (
    BrokerUnavailable,
    Evidence,
    EvidenceLink,
    ReviewState,
    ReviewStatus,
    ReviewTicket,
)
from workers import keys
from workers.settings import ReviewSettings

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str, str], Awaitable[None]]  # (fingerprint, service id, queue) → task sent
MAX_RECONNECT_S = 5.0
ADMIT_LEASE_MS: Final = 30_000  # an admission whose send never returned stops counting after this long

# KEYS: the queue (a Redis list), its admissions; ARGV: admission id, cap, lease (ms). 1 admitted, 0 full.
_ADMIT: Final = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
if redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""


class ReadyListener:
    """One pub/sub subscription per process; futures keyed by fingerprint resolve when a result lands."""

    def __init__(self, redis: aioredis.Redis, reconnect_s: float = 0.5) -> None:
        self._redis = redis
        self._reconnect_s = reconnect_s
        self._waiters: defaultdict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="r1cds-ready-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def register(self, fingerprint: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[fingerprint].add(future)
        return future

    def discard(self, fingerprint: str, future: asyncio.Future[None]) -> None:
        waiting = self._waiters.get(fingerprint)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._waiters[fingerprint]

    def _notify(self, fingerprint: str) -> None:
        for future in self._waiters.pop(fingerprint, ()):
            if not future.done():
                future.set_result(None)

    async def _run(self) -> None:
        delay = self._reconnect_s
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.READY_CHANNEL)
                self.connected.set()
                delay = self._reconnect_s
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self._notify(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError) as exc:
                if self.connected.is_set():
                    log.warning("review notifications interrupted (%s); reconnecting", type(exc).__name__)
                self.connected.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_S)  # an outage costs a few attempts, not a log flood
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()


class RedisReviewBroker:
    """plugin.ai_review.ReviewBroker over Redis and Celery; see the module notes for the protocol."""

    def __init__(
        self,
        redis: aioredis.Redis,
        listener: ReadyListener,
        enqueue: Enqueue,
        settings: ReviewSettings,
    ) -> None:
        self._redis = redis
        self._listener = listener
        self._enqueue = enqueue
        self._settings = settings
        self._admit = redis.register_script(_ADMIT)

    async def obtain(self, ticket: ReviewTicket, wait_s: float) -> ReviewStatus:
        fp = ticket.fingerprint
        # A deadline, not a duration: the round trips before the wait come out of it.
        deadline = time.monotonic() + wait_s
        ready = self._listener.register(fp)
        try:
            found = await self._stored(fp)
            if found is not None:
                return found
            review_id, state = await self._start(ticket)
            if state == "busy":
                return ReviewStatus("busy", review_id)
            if state == "landed":  # the result arrived between our first look and the lock
                found = await self._stored(fp)
                if found is not None:
                    return found
            left_s = deadline - time.monotonic()
            if left_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ready), timeout=left_s)
            found = await self._stored(fp)
            return found if found is not None else ReviewStatus("pending", review_id)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"review store unreachable: {type(exc).__name__}") from None
        finally:
            self._listener.discard(fp, ready)

    async def status(self, review_id: str) -> ReviewStatus | None:
        try:
            fp = await self._redis.get(keys.review_key(review_id))
            if fp is None:
                return None
            fingerprint = fp.decode() if isinstance(fp, bytes) else str(fp)
            found = await self._stored(fingerprint)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"review store unreachable: {type(exc).__name__}") from None
        return found if found is not None else ReviewStatus("pending", review_id)

    async def link_evidence(self, link: EvidenceLink) -> str:
        token = secrets.token_urlsafe(18)  # 144 bits: the token is the only key to the page
        body = orjson.dumps(
            {
                "review_id": link.review_id,
                "service_id": link.service_id,
                "fingerprint": link.fingerprint,
                "references": dict(link.references),
            }
        )
        try:
            await self._redis.set(keys.evidence_key(token), body, ex=self._settings.result_ttl_s)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"review store unreachable: {type(exc).__name__}") from None
        return token

    async def evidence(self, token: str) -> Evidence | None:
        try:
            raw = await self._redis.get(keys.evidence_key(token))
            if raw is None:
                return None
            stored = orjson.loads(raw)
            link = EvidenceLink(
                stored["review_id"], stored["service_id"], stored["fingerprint"], stored["references"]
            )
            status = await self.status(link.review_id)
            if status is None:
                return None
            context = None
            if status.outcome is not None:
                encoded = await self._redis.hget(keys.result_key(link.fingerprint), "context")
                if isinstance(encoded, bytes):
                    with contextlib.suppress(codec.CodecError):
                        context = codec.decode_context(encoded)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"review store unreachable: {type(exc).__name__}") from None
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("unreadable evidence link; treating it as expired")
            return None
        return Evidence(link, status, context)

    async def claim_notice(self, review_id: str) -> bool:
        try:
            first = await self._redis.set(
                keys.notice_key(review_id), b"1", nx=True, ex=self._settings.result_ttl_s
            )
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"review store unreachable: {type(exc).__name__}") from None
        return bool(first)

    async def _stored(self, fingerprint: str) -> ReviewStatus | None:
        record = await self._redis.hmget(keys.result_key(fingerprint), ["outcome", "review_id"])
        raw, review_id = record
        if not isinstance(raw, bytes):
            return None
        try:
            outcome = codec.decode_outcome(raw)
        except codec.CodecError:
            # Another codec version (a rollback) or damage: drop it, so the review runs again.
            log.error("unreadable stored review result; discarding it")
            await self._redis.delete(keys.result_key(fingerprint))
            return None
        rid = review_id.decode() if isinstance(review_id, bytes) else str(review_id or "")
        state: ReviewState = "failed" if outcome.failed else "ready"
        return ReviewStatus(state, rid, outcome)

    async def _start(self, ticket: ReviewTicket) -> tuple[str, ReviewState | Literal["landed"]]:
        """Enqueue the review unless someone already did; (review id, pending, busy or landed)."""
        fp = ticket.fingerprint
        review_id = secrets.token_urlsafe(18)
        won = await self._redis.set(keys.lock_key(fp), review_id, nx=True, ex=self._settings.lock_ttl_s)
        if not won:
            held = await self._redis.get(keys.lock_key(fp))
            return (held.decode() if isinstance(held, bytes) else str(held or "")), "pending"
        if await self._stored(fp) is not None:
            await self._redis.delete(keys.lock_key(fp))
            return review_id, "landed"
        queue = keys.QUEUE_OF[ticket.urgency]
        admitting = keys.admitting_key(queue)
        admitted = await self._admit(
            keys=[queue, admitting], args=[review_id, self._settings.queue_max_depth, ADMIT_LEASE_MS]
        )
        if not admitted:
            await self._redis.delete(keys.lock_key(fp))
            log.warning("review queue %s is full; not enqueueing", queue)
            return "", "busy"
        try:
            ttl = self._settings.result_ttl_s
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(
                    keys.context_key(fp), codec.encode_context(ticket.context), ex=self._settings.lock_ttl_s
                )
                pipe.set(keys.review_key(review_id), fp, ex=ttl)
                await pipe.execute()
            try:
                await self._enqueue(fp, ticket.service_id, queue)
            except Exception as exc:
                # The task never left: free the fingerprint so the next hook can try again.
                await self._redis.delete(keys.lock_key(fp))
                raise BrokerUnavailable(f"could not enqueue the review: {type(exc).__name__}") from None
        finally:
            # Sent (now counted by LLEN) or not sent at all: either way the admission has done its work.
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(admitting, review_id)
        return review_id, "pending"
