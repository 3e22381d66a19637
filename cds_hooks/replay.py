"""The jti replay store: remembers which JWT ids were already used, in Redis with an in-process fallback.

Port and adapters:

    ReplayStore          the port: `await first_use(key, ttl_s)` is True only the first time within ttl_s
    RedisReplayStore     production: `SET r1cds:jti:<key> 1 NX EX ttl`, shared by every process
    MemoryReplayStore    in-process, bounded; the fallback during a Redis outage and the fake for tests

Outage policy (a decision, written down here): when Redis cannot be reached we keep answering EHR calls and
record jtis in this process's memory instead. Replays that land on the same process are still refused; a
replay sent to another process during the outage, or a jti first seen by Redis before the outage and
replayed during it, is not. The alternative, refusing every hook while Redis blips, turns a cache hiccup
into a clinical outage. Once Redis answers again we also consult the memory store, so a jti recorded only
in memory during the outage cannot be replayed through Redis afterwards.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

KEY_PREFIX = "r1cds:jti:"

# Errors that mean "Redis is not there right now", as opposed to a bug in how we call it. Builtin
# TimeoutError covers an asyncio timeout around a call; OSError covers socket errors redis-py did not wrap.
_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    TimeoutError,
    OSError,
)


class ReplayStore(Protocol):
    async def first_use(self, key: str, ttl_s: int) -> bool:
        """Record `key` for `ttl_s` seconds; True if it was not already recorded (and unexpired)."""
        ...


class MemoryReplayStore:
    """Bounded in-process replay store with expiry by monotonic time.

    When full, expired entries go first, then the oldest live ones. Evicting a live entry reopens a replay
    window for that jti, so it is logged (at most once a minute); size `max_entries` above the number of
    tokens one process sees within a token lifetime.
    """

    _EVICTION_LOG_INTERVAL_S = 60.0

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        # Insertion-ordered, so the first key is the oldest live one.
        self._expiry: dict[str, float] = {}
        # Min-heap of (expiry, key) so expired entries are found without scanning. It can hold stale pairs
        # for keys evicted or re-recorded since; those are skipped when popped.
        self._heap: list[tuple[float, str]] = []
        self._last_eviction_log = float("-inf")

    def __len__(self) -> int:
        return len(self._expiry)

    async def first_use(self, key: str, ttl_s: int) -> bool:
        return self.record(key, ttl_s)

    def record(self, key: str, ttl_s: int) -> bool:
        """The synchronous core of `first_use`; no await inside, so it is atomic within the event loop."""
        now = self._clock()
        self._drop_expired(now)
        if key in self._expiry:
            return False
        while len(self._expiry) >= self._max_entries:
            self._evict_oldest(now)
        expiry = now + max(ttl_s, 1)
        self._expiry[key] = expiry
        heapq.heappush(self._heap, (expiry, key))
        if len(self._heap) > 2 * self._max_entries:
            self._heap = [(exp, k) for k, exp in self._expiry.items()]
            heapq.heapify(self._heap)
        return True

    def contains(self, key: str) -> bool:
        """Whether `key` is recorded and unexpired, without recording it."""
        expiry = self._expiry.get(key)
        return expiry is not None and expiry > self._clock()

    def _drop_expired(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            expiry, key = heapq.heappop(heap)
            if self._expiry.get(key) == expiry:
                del self._expiry[key]

    def _evict_oldest(self, now: float) -> None:
        oldest = next(iter(self._expiry))
        del self._expiry[oldest]
        if now - self._last_eviction_log >= self._EVICTION_LOG_INTERVAL_S:
            self._last_eviction_log = now
            log.warning(
                "in-memory replay store full (%d entries); evicting unexpired jtis weakens replay protection",
                self._max_entries,
            )


class RedisReplayStore:
    """Replay store shared by all processes through Redis, falling back to memory while Redis is down.

    Timeouts come from the injected client: build it with `socket_timeout` and `socket_connect_timeout`
    set to `Settings.redis_timeout_s` so that a hung Redis costs an EHR call milliseconds, not seconds.
    """

    def __init__(self, redis: Redis, fallback: MemoryReplayStore | None = None) -> None:
        self._redis = redis
        self._fallback = fallback if fallback is not None else MemoryReplayStore()
        self._in_outage = False

    @property
    def in_outage(self) -> bool:
        """True from the first failed Redis call until the next successful one."""
        return self._in_outage

    async def first_use(self, key: str, ttl_s: int) -> bool:
        ttl = max(int(ttl_s), 1)
        try:
            created = await self._redis.set(KEY_PREFIX + key, 1, nx=True, ex=ttl)
        except _OUTAGE_ERRORS as exc:
            if not self._in_outage:
                self._in_outage = True
                # One line per outage, not per request: under load an outage would otherwise flood the log.
                log.warning(
                    "redis unavailable for jti replay checks (%s); using in-process memory until it is back",
                    type(exc).__name__,
                )
            return self._fallback.record(key, ttl)
        if self._in_outage:
            self._in_outage = False
            log.info("redis is back for jti replay checks")
        if not created:
            return False
        # A jti recorded only in memory while Redis was down must stay used after Redis returns.
        return not self._fallback.contains(key)
