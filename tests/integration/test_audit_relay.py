"""The audit relay: the API's records through a Redis stream into the chain, at least once, in order."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from plugin.audit import HookCallRecord, canonical
from tests.support.redis_server import RedisHandle, running_redis
from workers import keys
from workers.audit_relay import AuditRelayConsumer, RedisAuditRelay
from workers.audit_store import AuditStore, migrate

pytestmark = pytest.mark.integration


def record(n: int) -> HookCallRecord:
    return HookCallRecord(
        at=datetime(2026, 11, 25, 12, 0, n % 60, tzinfo=UTC),
        hook_instance=f"instance-{n}",
        service_id="r1-chart-review",
        hook="patient-view",
        tenant="ehr",
        fingerprint=None,
        timings_ms={"total": 1.0},
        http_status=200,
        outcome="rules-only",
        card_uuids=(),
    )


def document(n: int, hook_instance: str | None = None) -> dict[str, object]:
    """A hook-call record as the API relays it: plain fields, not yet validated."""
    fields = record(n).model_dump(mode="json")
    if hook_instance is not None:
        fields["hook_instance"] = hook_instance
    return fields


@pytest.fixture
def server() -> Iterator[RedisHandle]:
    with running_redis() as handle:
        yield handle


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuditStore]:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    migrate(url)
    with AuditStore(url) as opened:
        yield opened


def instances(store: AuditStore) -> list[str]:
    return [s.record.hook_instance for s in store.records() if isinstance(s.record, HookCallRecord)]


async def test_relayed_records_reach_the_chain_in_order(server: RedisHandle, store: AuditStore) -> None:
    client = aioredis.Redis.from_url(server.url)
    try:
        await RedisAuditRelay(client, fallback=None).append_documents([document(n) for n in range(120)])
    finally:
        await client.aclose()
    sync = redis.Redis.from_url(server.url)
    consumer = AuditRelayConsumer(sync, store, block_ms=100)
    while consumer.drain_once():
        pass
    assert instances(store) == [f"instance-{n}" for n in range(120)]
    assert store.verify().intact
    assert sync.xlen(keys.AUDIT_STREAM) == 0, "acknowledged entries leave the stream"


async def test_redis_down_writes_straight_to_the_chain(server: RedisHandle, store: AuditStore) -> None:
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.2)
    server.stop()
    try:
        relay = RedisAuditRelay(client, fallback=store)
        await relay.append(record(1))
        await relay.append_documents([document(2)])
    finally:
        await client.aclose()
    assert instances(store) == ["instance-1", "instance-2"]


async def test_entries_a_dead_consumer_took_are_claimed_by_another(
    server: RedisHandle, store: AuditStore
) -> None:
    client = aioredis.Redis.from_url(server.url)
    try:
        await RedisAuditRelay(client, fallback=None).append_documents([document(n) for n in range(3)])
    finally:
        await client.aclose()
    sync = redis.Redis.from_url(server.url)

    class Dying:
        def write_many(self, batch: object) -> None:
            raise RuntimeError("the worker died before its transaction committed")

        def write_entries(self, entries: object) -> None:
            raise RuntimeError("the worker died before its transaction committed")

    with pytest.raises(RuntimeError):
        AuditRelayConsumer(sync, Dying(), name="dead", block_ms=100).drain_once()
    assert instances(store) == []
    survivor = AuditRelayConsumer(sync, store, name="alive", block_ms=100, claim_idle_ms=200)
    assert survivor.drain_once() == 0, "not idle long enough yet: still the dead consumer's"
    await asyncio.sleep(0.3)
    assert survivor.drain_once() == 3
    assert instances(store) == ["instance-0", "instance-1", "instance-2"]


def test_the_thread_stops_and_writes_what_is_left(server: RedisHandle, store: AuditStore) -> None:
    sync = redis.Redis.from_url(server.url)
    consumer = AuditRelayConsumer(sync, store, block_ms=100)
    consumer.start()
    sync.xadd(keys.AUDIT_STREAM, {b"d": canonical(record(7))})
    consumer.stop()
    assert "instance-7" in instances(store)


def test_an_unreadable_stream_entry_is_skipped_and_the_rest_written(
    server: RedisHandle, store: AuditStore
) -> None:
    sync = redis.Redis.from_url(server.url)
    good = canonical(record(7))
    not_a_record = b'{"kind": "diary", "at": "2026-11-25T12:00:00.000000Z"}'
    sync.xadd(keys.AUDIT_STREAM, {b"d": b"\n".join([b"not json", not_a_record, good.encode()])})
    assert AuditRelayConsumer(sync, store, name="reader", block_ms=100).drain_once() == 1
    [stored] = list(store.records())
    assert stored.body == good, "validated, then stored in its canonical text"
    assert store.verify().broken is None


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


async def test_relayed_documents_are_validated_by_the_worker(
    server: RedisHandle, store: AuditStore, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.Redis.from_url(server.url)
    try:
        # The middle one carries an EHR hookInstance with spaces, which no record may hold as sent: it is
        # recorded as its digest, never skipped (issue 19, item 7).
        relay = RedisAuditRelay(client, fallback=None)
        await relay.append_documents([document(1), document(2, "Jane Doe 1970"), document(3)])
    finally:
        await client.aclose()
    sync = redis.Redis.from_url(server.url)
    assert AuditRelayConsumer(sync, store, block_ms=100).drain_once() == 3
    assert instances(store) == ["instance-1", digest("Jane Doe 1970"), "instance-3"]
    assert [s.body for s in store.records()][::2] == [canonical(record(1)), canonical(record(3))]
    assert "Jane" not in caplog.text and all("Jane" not in s.body for s in store.records())


async def test_documents_go_straight_to_the_chain_when_redis_is_down(
    server: RedisHandle, store: AuditStore
) -> None:
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.2)
    server.stop()
    try:
        await RedisAuditRelay(client, fallback=store).append_documents([document(4), document(5, "a b")])
    finally:
        await client.aclose()
    assert instances(store) == ["instance-4", digest("a b")]
