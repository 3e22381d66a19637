"""Override suppressions in Redis: one key per tenant and card uuid, expiring with the suppression period."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import redis.asyncio as aioredis

PREFIX: Final = "r1cds:suppressed:"


def suppression_key(tenant: str | None, card_uuid: str) -> str:
    """`r1cds:suppressed:<tenant digest>:<card uuid>`.

    The tenant is hashed (a configured name may hold any character, and a key should not spell it); the
    card uuid is our own opaque id (uuid5 of the finding), which the audit trail and the feedback stream
    already hold. No patient or resource id appears in a key.
    """
    tenant_digest = hashlib.sha256((tenant or "").encode()).hexdigest()[:16]
    return f"{PREFIX}{tenant_digest}:{card_uuid}"


class RedisSuppressionStore:
    """plugin.suppression.SuppressionStore on Redis. Raises what the client raises: the policy fails open."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def suppress(self, tenant: str | None, card_uuid: str, ttl_s: float) -> None:
        # NX: the period runs from the first override; an EHR retrying the feedback must not extend it.
        await self._redis.set(
            suppression_key(tenant, card_uuid), b"1", px=max(1, round(ttl_s * 1000)), nx=True
        )

    async def suppressed(self, tenant: str | None, card_uuids: Sequence[str]) -> frozenset[str]:
        if not card_uuids:
            return frozenset()
        values = await self._redis.mget([suppression_key(tenant, u) for u in card_uuids])
        return frozenset(u for u, value in zip(card_uuids, values, strict=True) if value is not None)
