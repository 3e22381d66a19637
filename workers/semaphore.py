"""A cross-worker cap on in-flight model requests: a Redis semaphore whose slots are leases that expire."""

# Slots are members of one sorted set scored by lease expiry. Acquiring (one Lua script, so atomic):
# drop expired leases, then add ours if fewer than `limit` remain. A worker that dies holding a slot
# (SIGKILL, a lost machine) leaks it only until its lease expires; a live holder renews it (hold() does,
# every third of a lease, from a thread) for at most max_hold_s. Releasing removes our member. The server's clock (TIME) scores leases, so worker clocks need not agree.

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

import redis
import redis.asyncio as aioredis

from workers import keys
from workers.errors import SlotTimeout

log = logging.getLogger(__name__)

# Set (with a lease's expiry) by a worker whose model request got no answer in time: the server was silent
# to us lately, so its silence now is a hung or saturated server, not an idle one (workers.wiring). Beside
# the layout in workers.keys.
MODEL_STALLED: Final = f"{keys.PREFIX}:model-stalled"

_ACQUIRE: Final = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
"""


def _live_from(server_time: tuple[int, int]) -> str:
    """The lowest score of a live lease at the server time (seconds, microseconds), as a ZCOUNT bound."""
    seconds, micros = server_time
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    # Exclusive, as in the acquire script: a lease scored now_ms or earlier has expired.
    return f"({now_ms}"


async def in_flight(client: aioredis.Redis, key: str = keys.MODEL_SLOTS) -> int:
    """Model requests in flight across all workers (live leases), read-only, over an asyncio client."""
    server_time = await client.time()
    return int(await client.zcount(key, _live_from(server_time), "+inf"))


def mark_stalled(client: redis.Redis, lease_s: float, *, key: str = MODEL_STALLED) -> None:
    """Record that a model request of ours timed out; the mark lasts lease_s (refreshed by each timeout)."""
    client.set(key, b"1", px=max(1, int(lease_s * 1000)))


async def pressure(
    client: aioredis.Redis, *, key: str = keys.MODEL_SLOTS, stalled_key: str = MODEL_STALLED
) -> int:
    """Our load on the model server: requests in flight (live leases), plus one while a stall mark stands."""
    server_time = await client.time()
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcount(key, _live_from(server_time), "+inf")
        pipe.exists(stalled_key)
        live, stalled = await pipe.execute()
    return int(live) + int(stalled)


class ModelSlots:
    def __init__(
        self,
        client: redis.Redis,
        limit: int,
        *,
        key: str = keys.MODEL_SLOTS,
        poll_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._client = client
        self._limit = limit
        self._key = key
        self._poll_s = poll_s
        self._sleep = sleep
        self._clock = clock
        self._acquire = client.register_script(_ACQUIRE)

    def try_acquire(self, holder: str, lease_s: float) -> bool:
        """Take (or renew) a slot for `holder` for lease_s seconds; False when all slots are taken."""
        return bool(self._acquire(keys=[self._key], args=[holder, self._limit, int(lease_s * 1000)]))

    def release(self, holder: str) -> None:
        self._client.zrem(self._key, holder)

    def in_use(self) -> int:
        return int(self._client.zcount(self._key, _live_from(self._client.time()), "+inf"))

    @contextlib.contextmanager
    def hold(
        self, holder: str, lease_s: float, wait_s: float, max_hold_s: float | None = None
    ) -> Iterator[None]:
        """Wait up to wait_s for a slot, hold it for the block, always give it back; SlotTimeout if none.

        With max_hold_s, the lease is renewed every third of lease_s while the block runs, up to max_hold_s
        in all: a short lease frees a dead or frozen holder's slot soon, and a live one keeps its slot.
        """
        deadline = self._clock() + wait_s
        while not self.try_acquire(holder, lease_s):
            if self._clock() >= deadline:
                raise SlotTimeout(f"no model slot free within {wait_s:.0f} s (limit {self._limit})")
            self._sleep(self._poll_s)
        done = threading.Event()
        renewer = None
        if max_hold_s is not None and max_hold_s > lease_s:
            renewer = threading.Thread(
                target=self._renew,
                args=(holder, lease_s, max_hold_s, done),
                name="r1cds-slot-lease",
                daemon=True,
            )
            renewer.start()
        try:
            yield
        finally:
            done.set()
            if renewer is not None:
                renewer.join()
            self.release(holder)

    def _renew(self, holder: str, lease_s: float, max_hold_s: float, done: threading.Event) -> None:
        until = time.monotonic() + max_hold_s - lease_s  # the last renewal's lease ends by max_hold_s
        while not done.wait(lease_s / 3) and time.monotonic() < until:
            try:
                if not self.try_acquire(holder, lease_s):
                    log.warning("model slot lease lapsed and was taken; the slot limit may be exceeded once")
                    return
            except (redis.RedisError, OSError) as exc:
                log.warning("could not renew a model slot lease (%s)", type(exc).__name__)
