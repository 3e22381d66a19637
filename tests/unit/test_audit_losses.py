"""Every answered call has exactly one audit record, and every record lost is counted (issue 19, item 7).

A client's odd string (a hookInstance with a space, over 128 characters, non-ASCII) is stored as
`sha256:<hex>` of it, never a reason to skip the record; a failing store loses records that the trail counts
one by one (`dropped`, `r1cds_audit_records_lost_total`) and logs with their exact number; /readyz's audit
check says down while writes fail.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from cds_hooks import metrics as api
from cds_hooks.handlers import AuditTrail, HookCallFacts
from cds_hooks.health import HealthHandler, audited_readiness
from plugin.audit import (
    CardFeedbackRecord,
    HookCallRecord,
    MemoryAuditSink,
    StoredRecord,
    client_token,
    feedback_audit_record,
    parse_record,
    record_from_document,
)
from plugin.cards import Coding
from plugin.feedback import FeedbackRecord
from tests.unit.test_audit_wiring import SERVICE, app_with, hook, running

pytestmark = pytest.mark.unit

ODD = ["has a space", "x" * 129, "héllo-ünïcode", "tab\there", "", "-leading-dash", "ok\n"]


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@pytest.mark.parametrize("value", ["d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "a" * 128, "urn:x/y+z.1"])
def test_a_token_shaped_client_id_is_kept_as_sent(value: str) -> None:
    assert client_token(value) == value


@pytest.mark.parametrize("value", ODD)
def test_any_other_client_id_is_stored_as_its_digest_and_reads_back_the_same(value: str) -> None:
    facts = HookCallFacts(
        at=datetime(2026, 11, 25, tzinfo=UTC),
        hook_instance=value,
        service_id=SERVICE,
        hook=value,
        tenant=None,
        user=None,
        timings_s={"total": 0.01},
        http_status=200,
        outcome="rules-only",
    )
    built = facts.record()  # the API's own build (a store with write_many)
    relayed = record_from_document(orjson.loads(orjson.dumps(facts.document())))  # the workers' build
    assert built == relayed
    assert (built.hook_instance, built.hook) == (digest(value), digest(value))
    assert parse_record(built.model_dump_json()) == built, "a stored digest validates unchanged"


async def test_each_odd_hook_instance_answered_over_http_has_exactly_one_record() -> None:
    sink = MemoryAuditSink()
    app = app_with(sink)
    async with running(app) as client:
        for value in ODD[:3]:
            await hook(client, value)
        await app.state.audit_trail.flush()
        assert app.state.audit_trail.dropped == 0
    calls = [r for r in sink.records if isinstance(r, HookCallRecord)]
    assert [c.hook_instance for c in calls] == [digest(v) for v in ODD[:3]]
    assert all(value not in stored.body for value in ODD[:3] for stored in sink.chain)


def test_odd_feedback_strings_are_recorded_as_digests() -> None:
    item = FeedbackRecord(
        service_id=SERVICE,
        card_uuid="card with spaces",
        outcome="overridden",
        outcome_timestamp="2026-11-25T12:00:00Z",
        override_reason=Coding(code="not\x00relevant", system="s" * 501),
        accepted_suggestions=("ünï",),
    )
    record = feedback_audit_record(item, at=datetime(2026, 11, 25, tzinfo=UTC))
    assert isinstance(record, CardFeedbackRecord)
    assert record.card_uuid == digest("card with spaces")
    assert record.accepted_suggestions == (digest("ünï"),)
    assert record.override_reason is not None
    assert (record.override_reason.code, record.override_reason.system) == (
        digest("not\x00relevant"),
        digest("s" * 501),
    )


# --- losses are counted exactly ---------------------------------------------------------------------------


class Counted:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def labels(self, cause: str) -> Counted:
        self._cause = cause
        return self

    def inc(self, amount: float = 1.0) -> None:
        self.counts[self._cause] = self.counts.get(self._cause, 0.0) + amount


@pytest.fixture
def lost(monkeypatch: pytest.MonkeyPatch) -> Counted:
    counter = Counted()
    fake: Any = object.__new__(api._ApiMetrics)
    fake.audit_lost = counter
    monkeypatch.setattr(api, "_metrics", fake)
    return counter


def call(n: int) -> HookCallRecord:
    return HookCallRecord(
        at=datetime(2026, 11, 25, tzinfo=UTC),
        hook_instance=f"instance-{n}",
        service_id=SERVICE,
        hook="patient-view",
        tenant=None,
        fingerprint=None,
        http_status=200,
        outcome="rules-only",
    )


class FullDisk:
    """A store whose disk is full: each batch fails as a whole (one transaction)."""

    def __init__(self) -> None:
        self.failing = True
        self.stored: list[HookCallRecord] = []

    async def append(self, record: Any) -> None:
        raise AssertionError("written in batches")

    def write_many(self, batch: Sequence[Any]) -> list[StoredRecord]:
        if self.failing:
            raise OSError("No space left on device")
        self.stored.extend(batch)
        return []


async def test_a_failed_batch_counts_every_record_it_lost(
    lost: Counted, caplog: pytest.LogCaptureFixture
) -> None:
    store = FullDisk()
    with caplog.at_level(logging.WARNING, logger="cds_hooks"):
        async with AuditTrail(store, coalesce_s=0) as trail:
            for n in range(490):  # submitted before the writer runs: one batch of 490
                trail.submit(lambda n=n: call(n))
            await trail.flush()
            assert trail.state() == "down"
            for n in range(3):  # another failed write, within the log interval: logged on exit
                trail.submit(lambda n=n: call(n))
            await trail.flush()
    assert trail.dropped == 493
    assert lost.counts == {"write": 493.0}
    lines = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    assert lines == [
        "audit trail: 490 record(s) not stored (OSError); 490 so far",
        "audit trail: 3 record(s) not stored (OSError); 493 so far",
    ]


async def test_a_full_backlog_counts_each_record_it_drops(lost: Counted) -> None:
    store = FullDisk()
    store.failing = False
    async with AuditTrail(store, max_backlog=10, coalesce_s=0) as trail:
        for n in range(25):
            trail.submit(lambda n=n: call(n))
        assert trail.state() == "busy"
        await trail.flush()
    assert (trail.dropped, len(store.stored)) == (15, 10)
    assert lost.counts == {"backlog": 15.0}


# --- readiness --------------------------------------------------------------------------------------------


async def test_readyz_says_the_audit_store_is_down_while_writes_fail_and_ok_once_one_succeeds() -> None:
    store = FullDisk()

    async def head_readable() -> bool:
        return True  # a full disk still reads

    async with AuditTrail(store, coalesce_s=0) as trail:
        health = HealthHandler({"audit": audited_readiness(trail, head_readable)})

        async def readyz() -> tuple[int, Any]:
            response = await health.ready()
            return response.status_code, orjson.loads(response.body)["checks"]["audit"]

        assert await readyz() == (200, "ok")
        trail.submit(lambda: call(1))
        await trail.flush()
        assert await readyz() == (503, "down")
        store.failing = False
        trail.submit(lambda: call(2))
        await trail.flush()
        assert await readyz() == (200, "ok")


async def test_the_store_probe_still_counts_when_the_trail_is_ok() -> None:
    async def unreadable() -> bool:
        return False

    async with AuditTrail(MemoryAuditSink()) as trail:
        response = await HealthHandler({"audit": audited_readiness(trail, unreadable)}).ready()
    assert response.status_code == 503
