"""The audit trail's wiring: hook calls and feedback recorded after the answer, never at its expense."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis
from fastapi import FastAPI

from cds_hooks.app import create_app
from cds_hooks.handlers import AuditTrail, hook_outcome
from cds_hooks.settings import load_settings
from inference.parsing import parse_sample
from inference.prompts import build_prompt
from plugin.ai_review import PENDING_SUMMARY, AiReview, MemoryReviewBroker
from plugin.audit import (
    AiRunRecord,
    AuditRecord,
    CardFeedbackRecord,
    HookCallRecord,
    MemoryAuditSink,
    StoredRecord,
    canonical,
    record_from_document,
)
from plugin.cards import ServiceResult
from plugin.catalog import CHART_REVIEW, shipped_registry
from plugin.feedback import MemoryFeedbackSink
from plugin.governance import GovernancePolicy
from plugin.model_port import ModelIdentity, SamplingParameters, ScriptedModel
from plugin.review import ReviewService
from plugin.services import ServiceRegistry
from tests.support import governance_corpus as corpus
from tests.support.asgi_server import unused_loopback_url
from tests.support.memory_review import scripted_runner, version
from workers.runtime import ReviewRuntime, _Run
from workers.settings import ReviewSettings

pytestmark = pytest.mark.unit

CLEAN = json.dumps(corpus.answer(corpus.clean_inr()))
SERVICE = CHART_REVIEW.id
SECRET = "postgresql://audit:hunter2@db.internal/r1cds"  # what a driver's error message may quote


def hook_body(instance: str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea") -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": instance,
        "context": {"patientId": "gov-1", "userId": "Practitioner/1"},
        "prefetch": corpus.prefetch(),
    }


def reviewer(broker: MemoryReviewBroker) -> AiReview:
    return AiReview(
        broker, corpus.knowledge(), version, lambda token: f"https://cds.test.invalid/evidence/{token}"
    )


def gated_broker(gate: asyncio.Event) -> MemoryReviewBroker:
    return MemoryReviewBroker(scripted_runner(ScriptedModel([ScriptedModel.answer(CLEAN, CLEAN)]), gate))


def app_with(audit: Any, registry: ServiceRegistry | None = None, sync_budget_s: float = 2.5) -> FastAPI:
    redis_url = unused_loopback_url().replace("http://", "redis://") + "/0"  # nothing listens: never used
    return create_app(
        load_settings(auth_disabled=True, redis_url=redis_url),
        registry or shipped_registry(clock=lambda: corpus.NOW),
        feedback_sink=MemoryFeedbackSink(),
        sync_budget_s=sync_budget_s,
        audit=audit,
    )


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://r1cds.test") as client:
            yield client


async def hook(client: httpx.AsyncClient, instance: str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea") -> Any:
    response = await client.post(f"/cds-services/{SERVICE}", json=hook_body(instance))
    assert response.status_code == 200, response.text
    return response.json()


def uuids(answer: dict[str, Any]) -> tuple[str, ...]:
    return tuple(card["uuid"] for card in answer["cards"])


# --- hook calls -------------------------------------------------------------------------------------------


async def test_every_answered_hook_call_is_recorded_the_cached_ones_as_served() -> None:
    sink = MemoryAuditSink()
    gate = asyncio.Event()
    registry = shipped_registry(clock=lambda: corpus.NOW, ai=reviewer(gated_broker(gate)))
    app = app_with(sink, registry, sync_budget_s=0.3)
    async with running(app) as client:
        pending = await hook(client, "instance-1")
        assert PENDING_SUMMARY in [c["summary"] for c in pending["cards"]]
        gate.set()
        ready = await hook(client, "instance-2")
        cached = await hook(client, "instance-3")
        assert cached == ready
        await app.state.audit_trail.flush()
        records = sink.records
    assert all(isinstance(r, HookCallRecord) for r in records)
    calls = [r for r in records if isinstance(r, HookCallRecord)]
    assert [c.outcome for c in calls] == ["ai-pending", "ai-ready", "ai-ready"]
    assert [c.hook_instance for c in calls] == ["instance-1", "instance-2", "instance-3"]
    assert [c.card_uuids for c in calls] == [uuids(pending), uuids(ready), uuids(cached)]
    [fingerprint] = {c.fingerprint for c in calls}
    assert fingerprint is not None and len(fingerprint) == 64
    assert {c.service_id for c in calls} == {SERVICE} and {c.http_status for c in calls} == {200}
    assert set(calls[0].timings_ms) == {"total", "prefetch", "service"}
    assert set(calls[2].timings_ms) == {"total", "prefetch"}, "a cached answer runs no service"
    assert calls[0].timings_ms["service"] >= 200, "the pending call waited for the review"


async def test_rules_only_answers_are_recorded_without_a_fingerprint() -> None:
    sink = MemoryAuditSink()
    app = app_with(sink)
    async with running(app) as client:
        answer = await hook(client)
        await app.state.audit_trail.flush()
    [call] = sink.records
    assert isinstance(call, HookCallRecord)
    assert (call.outcome, call.fingerprint, call.card_uuids) == ("rules-only", None, uuids(answer))
    assert call.tenant is None  # authentication is off


async def test_refused_calls_that_passed_admission_are_recorded_with_their_status() -> None:
    """A hook the service does not take (400) is in the trail; a malformed body (never admitted) is not."""
    sink = MemoryAuditSink()
    app = app_with(sink)
    async with running(app) as client:
        wrong_hook = {**hook_body("instance-400"), "hook": "encounter-discharge"}
        wrong_hook["context"] = {**wrong_hook["context"], "encounterId": "enc-1"}
        refused = await client.post(f"/cds-services/{SERVICE}", json=wrong_hook)
        assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome"
        malformed = await client.post(
            f"/cds-services/{SERVICE}", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400
        await app.state.audit_trail.flush()
    [call] = sink.records
    assert isinstance(call, HookCallRecord)
    assert (call.hook_instance, call.hook, call.http_status, call.outcome) == (
        "instance-400",
        "encounter-discharge",
        400,
        "error",
    )
    assert call.card_uuids == () and call.fingerprint is None and call.timings_ms["total"] > 0


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        (None, "rules-only"),
        ("ready", "ai-ready"),
        ("pending", "ai-pending"),
        ("busy", "ai-pending"),
        ("failed", "ai-unavailable"),
        ("unreachable", "ai-unavailable"),
    ],
)
def test_ai_states_map_onto_the_record_outcomes(state: str | None, outcome: str) -> None:
    assert hook_outcome(ServiceResult(ai_state=state)) == outcome


async def test_an_unreachable_broker_is_recorded_as_ai_unavailable() -> None:
    sink = MemoryAuditSink()
    broker = gated_broker(asyncio.Event())
    broker.unavailable = True
    app = app_with(sink, shipped_registry(clock=lambda: corpus.NOW, ai=reviewer(broker)))
    async with running(app) as client:
        await hook(client)
        await app.state.audit_trail.flush()
    [call] = sink.records
    assert isinstance(call, HookCallRecord)
    assert call.outcome == "ai-unavailable" and call.fingerprint is not None


async def test_without_a_sink_nothing_is_audited() -> None:
    app = app_with(None)
    async with running(app) as client:
        await hook(client)
        assert app.state.audit_trail is None


# --- a store that is down or slow never costs an answer -----------------------------------------------------


class FailingSink:
    def __init__(self) -> None:
        self.attempts = 0

    async def append(self, record: AuditRecord) -> None:
        self.attempts += 1
        raise ConnectionRefusedError(f"could not connect to {SECRET}")


class FailingBatchStore(FailingSink):
    def write_many(self, batch: Sequence[AuditRecord]) -> list[StoredRecord]:
        self.attempts += 1
        raise TimeoutError(f"database is locked: {SECRET}")


@pytest.mark.parametrize("sink_type", [FailingSink, FailingBatchStore])
async def test_a_failing_sink_does_not_fail_the_hook(
    sink_type: type[FailingSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = sink_type()
    app = app_with(sink)
    with caplog.at_level(logging.WARNING, logger="cds_hooks"):
        async with running(app) as client:
            first = await hook(client, "instance-1")
            second = await hook(client, "instance-2")  # from the answer cache
            assert first == second and first["cards"]
            await app.state.audit_trail.flush()
    assert sink.attempts >= 1
    logged = "\n".join(r.getMessage() for r in caplog.records if "audit trail" in r.getMessage())
    expected = "ConnectionRefusedError" if sink_type is FailingSink else "TimeoutError"
    assert expected in logged
    # The exception class only: not its message (it may quote a URL with a password), not the record.
    for secret in ("hunter2", "db.internal", "instance-1", "gov-1", SERVICE):
        assert secret not in caplog.text


class HangingSink:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.records: list[AuditRecord] = []

    async def append(self, record: AuditRecord) -> None:
        self.started.set()
        await self.release.wait()  # a database that does not answer
        self.records.append(record)


async def test_a_hanging_sink_does_not_delay_the_answer() -> None:
    sink = HangingSink()
    app = app_with(sink)
    async with running(app) as client:
        await asyncio.wait_for(hook(client, "instance-1"), 5)
        await asyncio.wait_for(sink.started.wait(), 5)
        await asyncio.wait_for(hook(client, "instance-2"), 5)  # the writer is stuck; the answers are not
        assert sink.records == []
        sink.release.set()
    # Leaving the app wrote what was waiting.
    assert [r.hook_instance for r in sink.records if isinstance(r, HookCallRecord)] == [
        "instance-1",
        "instance-2",
    ]


async def test_records_are_written_in_order_in_batches_and_a_full_backlog_drops_new_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batches: list[list[AuditRecord]] = []

    class BatchStore:
        async def append(self, record: AuditRecord) -> None:
            raise AssertionError("a store with write_many is written in batches")

        def write_many(self, batch: Sequence[AuditRecord]) -> list[StoredRecord]:
            batches.append(list(batch))
            return []

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

    with caplog.at_level(logging.WARNING, logger="cds_hooks"):
        async with AuditTrail(BatchStore(), max_backlog=1200) as trail:
            for n in range(1300):  # submitted while the writer has not run yet: the last 100 are dropped
                trail.submit(lambda n=n: call(n))
            trail.submit(lambda: call(-1))
            await trail.flush()
            trail.submit(lambda: call(1300))  # room again once the backlog is written
            await trail.flush()
    written = [r.hook_instance for batch in batches for r in batch if isinstance(r, HookCallRecord)]
    assert written == [f"instance-{n}" for n in [*range(1200), 1300]]
    assert max(len(b) for b in batches) <= AuditTrail.BATCH
    assert trail.dropped == 101
    assert "backlog full" in caplog.text


async def test_a_record_that_cannot_be_built_costs_only_itself() -> None:
    sink = MemoryAuditSink()
    async with AuditTrail(sink) as trail:
        trail.submit(lambda: HookCallRecord.model_validate({"hook_instance": "has spaces"}))
        trail.submit(
            lambda: HookCallRecord(
                at=datetime(2026, 11, 25, tzinfo=UTC),
                hook_instance="ok-1",
                service_id=SERVICE,
                hook="patient-view",
                tenant=None,
                fingerprint=None,
                http_status=200,
                outcome="rules-only",
            )
        )
        await trail.flush()
    assert [r.hook_instance for r in sink.records if isinstance(r, HookCallRecord)] == ["ok-1"]
    assert trail.dropped == 1


# --- feedback ---------------------------------------------------------------------------------------------


async def test_feedback_is_recorded_once_per_item_the_sink_newly_stored() -> None:
    sink = MemoryAuditSink()
    app = app_with(sink)

    def item(card: str, at: str) -> dict[str, Any]:
        return {
            "card": card,
            "outcome": "overridden",
            "outcomeTimestamp": at,
            "overrideReason": {
                "reason": {"code": "not-relevant", "system": "urn:r1cds:override-reason"},
                "userComment": "the patient Harriet said she stopped it",
            },
        }

    async with running(app) as client:
        url = f"/cds-services/{SERVICE}/feedback"
        first = {"feedback": [item("card-1", "2026-11-25T12:10:00Z")]}
        for body in (first, first, {"feedback": [item("card-1", "2026-11-25T12:11:00Z")]}):
            response = await client.post(url, json=body)
            assert response.status_code == 200
        await app.state.audit_trail.flush()
    feedback = [r for r in sink.records if isinstance(r, CardFeedbackRecord)]
    assert [(f.card_uuid, f.outcome_timestamp.minute) for f in feedback] == [("card-1", 10), ("card-1", 11)]
    assert feedback[0].override_reason is not None and feedback[0].override_reason.code == "not-relevant"
    assert all("Harriet" not in stored.body for stored in sink.chain)


# --- the worker -------------------------------------------------------------------------------------------


def runtime(audit: Any) -> ReviewRuntime:
    settings = ReviewSettings(model_backend="sglang", model_url="http://127.0.0.1:9", model_name="r1-test")
    client = redis.Redis.from_url(unused_loopback_url().replace("http://", "redis://") + "/0")

    @asynccontextmanager
    async def no_model() -> AsyncIterator[Any]:
        raise AssertionError("not asked")
        yield

    return ReviewRuntime(settings, client, no_model, corpus.knowledge(), audit=audit)


async def governed_run() -> _Run:
    service = ReviewService(
        ScriptedModel([ScriptedModel.answer(CLEAN, CLEAN)]),
        build_prompt,
        parse_sample,
        corpus.knowledge(),
        GovernancePolicy(),
        samples=2,
    )
    outcome = await service.review(SERVICE, corpus.built(), None)
    return _Run(outcome, SamplingParameters(n=2), ModelIdentity("sglang", "r1-test"))


async def test_the_worker_records_each_stored_run() -> None:
    sink = MemoryAuditSink()
    run = await governed_run()
    runtime(sink)._record("a" * 64, run)
    [record] = sink.records
    assert isinstance(record, AiRunRecord)
    assert (record.fingerprint, record.outcome, record.sampling.n) == ("a" * 64, "accepted", 2)
    assert record.knowledge_base_version == corpus.knowledge().version


async def test_a_failing_audit_write_never_fails_the_review_task(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def write(self, record: AuditRecord) -> object:
            raise ConnectionRefusedError(f"could not connect to {SECRET}")

    run = await governed_run()
    with caplog.at_level(logging.WARNING, logger="workers"):
        runtime(Down())._record("b" * 64, run)
    assert "ConnectionRefusedError" in caplog.text and "hunter2" not in caplog.text


async def test_a_relay_gets_hook_call_facts_unbuilt_and_they_validate_to_the_same_record() -> None:
    """The API hands hook-call facts to the relay as fields; the workers' validation gives the record the
    API would have built, and other records travel as their fields too."""

    class DocumentSink:
        def __init__(self) -> None:
            self.documents: list[Mapping[str, Any]] = []

        async def append(self, record: AuditRecord) -> None:
            raise AssertionError("a document sink is written in batches of documents")

        async def append_documents(self, documents: Sequence[Mapping[str, Any]]) -> None:
            self.documents.extend(documents)

    sink = DocumentSink()
    app = app_with(sink)
    async with running(app) as client:
        answer = await hook(client, "instance-doc")
        await app.state.audit_trail.flush()
    [document] = sink.documents
    record = record_from_document(document)
    assert isinstance(record, HookCallRecord)
    assert (record.hook_instance, record.card_uuids, record.user) == (
        "instance-doc",
        uuids(answer),
        "Practitioner/1",
    )
    assert canonical(record_from_document(orjson.loads(orjson.dumps(document)))) == canonical(record)
