"""Feedback stored in a Redis stream, each item once however often the EHR retries it."""

from __future__ import annotations

import logging

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cds_hooks.errors import DependencyUnavailable
from plugin.feedback import FeedbackRecord

log = logging.getLogger(__name__)

STREAM = "r1cds:feedback"
SEEN_PREFIX = "r1cds:feedback:seen:"
SEEN_TTL_S = 90 * 24 * 3600

# Dedup marker and stream entry in one atomic step: a crash between them must not lose the item
# (marker set, entry missing) or duplicate it on retry (entry written, marker missing).
_RECORD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], '*', 'item', ARGV[2])
  return 1
end
return 0
"""


class RedisFeedbackSink:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_RECORD_ONCE)

    async def record(self, items: tuple[FeedbackRecord, ...]) -> int:
        new = 0
        try:
            for item in items:
                payload = orjson.dumps(item)
                added = await self._script(
                    keys=[SEEN_PREFIX + item.identity, STREAM], args=[SEEN_TTL_S, payload]
                )
                new += int(added)
        except (RedisError, OSError) as exc:
            log.warning("feedback store unavailable: %s", type(exc).__name__)
            raise DependencyUnavailable("feedback could not be stored right now; retry later") from None
        return new
