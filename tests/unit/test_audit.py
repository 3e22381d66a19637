"""The audit records (plugin.audit): canonical form, hash chain, FHIR AuditEvent/Provenance, no PHI."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.provenance import Provenance
from pydantic import ValidationError

from inference.budget import TokenBudget
from inference.parsing import parse_sample
from inference.prompts import build_prompt
from plugin.ai_cards import ai_cards
from plugin.audit import (
    GENESIS,
    AiRunRecord,
    AuditRecord,
    CardFeedbackRecord,
    HookCallRecord,
    MemoryAuditSink,
    ModelInfo,
    StoredRecord,
    ai_run_record,
    audit_event,
    canonical,
    chain_hash,
    feedback_audit_record,
    fhir_export,
    find_break,
    link,
    parse_record,
    provenance,
    provenances,
    verify_chain,
)
from plugin.cards import Coding
from plugin.context.build import build_context
from plugin.context.fingerprint import ReviewVersion, fingerprint
from plugin.feedback import FeedbackRecord
from plugin.governance import GovernancePolicy
from plugin.knowledge import load_knowledge_base
from plugin.model_port import ModelIdentity, ModelUnavailable, SamplingParameters, ScriptedModel
from plugin.retrieval import retrieve
from plugin.review import ReviewOutcome, ReviewService
from tests.support import governance_corpus as corpus
from tests.support.charts import (
    NOW,
    USER_ID,
    chart_names,
    chart_path,
    chart_prefetch,
    raw_bundle,
    raw_patient,
)
from tests.support.phi import identifying, leaks

pytestmark = pytest.mark.unit

SERVICE = "r1-chart-review"
SAMPLING = SamplingParameters(n=5, max_completion_tokens=1024)
FP = "3f" * 32


def hook_call(n: int = 0, **changes: Any) -> HookCallRecord:
    fields: dict[str, Any] = {
        "at": NOW + timedelta(seconds=n),
        "hook_instance": str(uuid.UUID(int=n + 1)),
        "service_id": SERVICE,
        "hook": "patient-view",
        "tenant": "test-ehr",
        "fingerprint": FP,
        "timings_ms": {"total": 41.25, "rules": 3.5, "ai_wait": 30.0},
        "http_status": 200,
        "outcome": "ai-pending",
        "card_uuids": (str(uuid.UUID(int=1000 + n)),),
    }
    return HookCallRecord(**(fields | changes))


def feedback(n: int = 0) -> CardFeedbackRecord:
    item = FeedbackRecord(
        service_id=SERVICE,
        card_uuid=str(uuid.UUID(int=1000 + n)),
        outcome="overridden",
        outcome_timestamp="2026-11-25T12:05:00Z",
        override_reason=Coding("not-relevant", "urn:r1cds:override-reason", "Not relevant"),
        user_comment="a free-text comment that never reaches the audit trail",
        tenant="test-ehr",
    )
    return feedback_audit_record(item, at=NOW + timedelta(minutes=5, seconds=n), user=USER_ID)


def review_service(model: ScriptedModel) -> ReviewService:
    return ReviewService(
        model,
        build_prompt,
        parse_sample,
        corpus.knowledge(),
        GovernancePolicy(),
        samples=5,
        completion=TokenBudget(1024, 1024),
    )


async def accepted_run() -> tuple[AiRunRecord, ReviewOutcome, str]:
    model = ScriptedModel([ScriptedModel.answer(*[json.dumps(corpus.answer(corpus.clean_inr()))] * 5)])
    outcome = await review_service(model).review(SERVICE, corpus.built(), corpus.PATIENT)
    key = fingerprint(corpus.context(), ReviewVersion(SERVICE, "chart-review@1", "scripted", "kb-1"))
    record = ai_run_record(
        outcome, fingerprint=key, knowledge_base_version=corpus.knowledge().version, sampling=SAMPLING, at=NOW
    )
    return record, outcome, key


def chain_of(count: int) -> list[StoredRecord]:
    sink = MemoryAuditSink()
    for n in range(count):
        sink.write(hook_call(n) if n % 3 else feedback(n))
    return sink.chain


# --- canonical form -----------------------------------------------------------------------------------------


def test_canonical_form_is_fixed() -> None:
    """A known answer: if a library upgrade changed the text, stored chains would stop verifying."""
    record = hook_call(timings_ms={"total": 41.25}, card_uuids=())
    text = canonical(record)
    assert text == (
        '{"at":"2026-11-25T12:00:00.000000Z","card_uuids":[],"fingerprint":"' + FP + '",'
        '"hook":"patient-view","hook_instance":"00000000-0000-0000-0000-000000000001","http_status":200,'
        '"kind":"hook-call","outcome":"ai-pending","service_id":"r1-chart-review","tenant":"test-ehr",'
        '"timings_ms":{"total":41.25},"v":1}'
    )
    assert chain_hash(GENESIS, text) == "f0ef64412339264e54ccc8b180f1c0372348cce04ab471f3c3f5ad5a0d538474"


def test_fields_added_later_are_in_the_text_only_when_set() -> None:
    """Chains written before card_kinds and user existed still read back to the text that was hashed."""
    bare = hook_call(card_uuids=("card-1",))
    assert '"card_kinds"' not in canonical(bare) and '"user"' not in canonical(bare)
    full = hook_call(card_uuids=("card-1",), card_kinds=("rule.inr-monitoring",), user="Practitioner/p-1")
    text = canonical(full)
    assert '"card_kinds":["rule.inr-monitoring"]' in text and '"user":"Practitioner/p-1"' in text
    assert canonical(parse_record(text)) == text and parse_record(canonical(bare)) == bare


async def test_canonical_form_round_trips_for_every_kind() -> None:
    run, _, _ = await accepted_run()
    for record in (hook_call(), run, feedback()):
        text = canonical(record)
        assert parse_record(text) == record
        assert canonical(parse_record(text)) == text
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_canonical_form_ignores_how_a_record_was_written() -> None:
    """Time zones, key order of mappings and float noise do not change the text."""
    base = hook_call(timings_ms={"total": 41.25, "rules": 3.5})
    other = hook_call(
        at=NOW.astimezone(timezone(timedelta(hours=-5))), timings_ms={"rules": 3.5000000001, "total": 41.25}
    )
    assert canonical(base) == canonical(other)


@pytest.mark.parametrize(
    "changes",
    [
        {"at": datetime(2026, 11, 25, 12, 0)},  # no time zone
        {"tenant": "line\nbreak"},
        {"fingerprint": "not-a-hash"},
        {"timings_ms": {"total": float("nan")}},
        {"http_status": 42},
        {"extra": "field"},
    ],
)
def test_record_fields_refuse_what_they_must_not_hold(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        hook_call(**changes)


def test_a_client_id_that_is_no_token_is_kept_only_as_its_digest() -> None:
    # Never a reason to lose the record (issue 19, item 7), never the text: a sentence does not fit.
    record = hook_call(hook_instance="Jane Smith 12 Main Street")
    assert record.hook_instance == "sha256:" + hashlib.sha256(b"Jane Smith 12 Main Street").hexdigest()
    assert "Jane" not in canonical(record)


def test_feedback_user_is_a_reference_not_a_name() -> None:
    with pytest.raises(ValidationError):
        CardFeedbackRecord(
            at=NOW,
            service_id=SERVICE,
            card_uuid="c1",
            outcome="accepted",
            outcome_timestamp=NOW,
            user="Dr Jane Smith",
        )


# --- chain ------------------------------------------------------------------------------------------------


def test_an_untouched_chain_verifies() -> None:
    chain = chain_of(12)
    assert verify_chain(chain) is None
    assert verify_chain([]) is None
    assert [s.seq for s in chain] == list(range(1, 13))
    assert chain[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))


@pytest.mark.parametrize("position", [0, 5, 11])
def test_an_edit_breaks_the_chain_at_the_edited_record(position: int) -> None:
    chain = chain_of(12)
    edited = chain[position].body.replace('"test-ehr"', '"other-ehr"')
    assert edited != chain[position].body
    chain[position] = dataclasses.replace(chain[position], body=edited)
    assert verify_chain(chain) == position
    found = find_break(chain)
    assert found is not None and found.reason == "hash" and found.seq == position + 1


@pytest.mark.parametrize("position", [0, 5, 10])
def test_an_edit_with_its_hash_recomputed_breaks_the_next_record(position: int) -> None:
    chain = chain_of(12)
    body = chain[position].body.replace('"test-ehr"', '"other-ehr"')
    chain[position] = dataclasses.replace(
        chain[position], body=body, hash=chain_hash(chain[position].prev_hash, body)
    )
    assert verify_chain(chain) == position + 1


@pytest.mark.parametrize("position", [0, 5, 10])
def test_a_deletion_breaks_the_chain_where_the_record_was(position: int) -> None:
    chain = chain_of(12)
    del chain[position]
    assert verify_chain(chain) == position
    found = find_break(chain)
    assert found is not None and found.reason == "prev-hash"


def test_renumbering_after_a_deletion_still_breaks_the_links() -> None:
    chain = chain_of(12)
    del chain[4]
    chain = [dataclasses.replace(s, seq=n) for n, s in enumerate(chain, start=1)]
    assert verify_chain(chain) == 4


@pytest.mark.parametrize("position", [0, 5, 10])
def test_reordering_breaks_the_chain(position: int) -> None:
    chain = chain_of(12)
    chain[position], chain[position + 1] = chain[position + 1], chain[position]
    assert verify_chain(chain) == position


@pytest.mark.parametrize("position", [1, 6, 11])
def test_an_insertion_breaks_the_chain_after_the_inserted_record(position: int) -> None:
    """A forged record linked properly to its predecessor: the original successor no longer links."""
    chain = chain_of(12)
    forged = link(hook_call(99, outcome="rules-only"), chain[position - 1])
    chain.insert(position, forged)
    assert verify_chain(chain) == position + 1


def test_a_seq_out_of_place_is_reported_as_such() -> None:
    chain = chain_of(5)
    chain[2] = dataclasses.replace(chain[2], seq=7)
    found = find_break(chain)
    assert found is not None and (found.position, found.reason) == (2, "seq")


def test_verification_can_start_after_a_trusted_record() -> None:
    chain = chain_of(10)
    assert find_break(chain[4:], after_seq=4, after_hash=chain[3].hash) is None
    assert find_break(chain[4:]) is not None


def test_removing_the_newest_records_is_invisible_to_the_chain_alone() -> None:
    """Documented limit: the store's head row (tests/integration/test_audit_store.py) catches truncation."""
    assert verify_chain(chain_of(10)[:7]) is None


async def test_memory_sink_is_the_port_fake() -> None:
    sink = MemoryAuditSink()
    await sink.append(hook_call())
    await sink.append(feedback())
    assert [r.kind for r in sink.records] == ["hook-call", "feedback"]
    assert verify_chain(sink.chain) is None


# --- builders from the core's results --------------------------------------------------------------------


async def test_ai_run_record_holds_the_run_and_the_card_uuids_the_cards_get() -> None:
    record, outcome, key = await accepted_run()
    assert record.outcome == "accepted"
    assert record.decision is not None and record.decision.accepted_count == 1
    built = corpus.built()
    assert outcome.decision is not None
    cards = ai_cards(
        outcome.decision.accepted,
        SERVICE,
        built.context,
        built.handles,
        corpus.knowledge(),
        "scripted",
        fingerprint=key,
    )
    assert record.card_uuids == tuple(c.uuid for c in cards)
    [accepted] = record.decision.accepted
    assert accepted.agreement == (5, 5)
    assert accepted.action_code == "loinc|6301-6"
    assert record.model == ModelInfo(backend="scripted", model="scripted")
    assert record.prompt is not None and record.prompt.template_name == "chart-review"
    assert record.usage is not None and record.usage.reasoning_tokens == 0
    assert record.passage_ids == outcome.retrieval.ids
    assert [s.outcome for s in record.samples] == ["ok"] * 5
    assert set(record.timings_ms) >= {"retrieval", "prompt", "model", "parse", "govern"}
    assert record.sampling.temperature == 0.6 and record.sampling.n == 5


async def test_ai_run_record_of_a_failed_review() -> None:
    model = ScriptedModel([ModelUnavailable("down")])
    outcome = await review_service(model).review(SERVICE, corpus.built(), corpus.PATIENT)
    record = ai_run_record(
        outcome,
        fingerprint=FP,
        knowledge_base_version="kb-1",
        sampling=SAMPLING,
        at=NOW,
        identity=ModelIdentity("sglang", "deepseek-r1", {"tp_size": "8"}),
    )
    assert (record.outcome, record.error, record.transient) == ("failed", "ModelUnavailable", True)
    assert record.decision is None and record.card_uuids == ()
    assert record.model is not None and record.model.details == {"tp_size": "8"}
    assert provenances(record) == []
    assert parse_record(canonical(record)) == record


def test_feedback_record_drops_the_comment() -> None:
    record = feedback()
    assert "comment" not in canonical(record)
    assert record.override_reason is not None and record.override_reason.code == "not-relevant"
    assert record.user == USER_ID


# --- FHIR ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "0"),
        ({"tenant": None, "fingerprint": None, "timings_ms": {}, "card_uuids": ()}, "0"),
        ({"http_status": 412, "outcome": "error"}, "8"),
        ({"http_status": 401, "outcome": "rules-only", "card_uuids": ()}, "4"),
        ({"http_status": 500, "outcome": "error"}, "8"),
    ],
)
def test_audit_event_validates_as_fhir_r4(changes: dict[str, Any], outcome: str) -> None:
    record = hook_call(**changes)
    resource = audit_event(record, resource_id="a1", site="ward-7")
    event = AuditEvent.model_validate(resource)
    assert event.action == "E"
    assert event.type.code == "rest"
    assert resource["outcome"] == outcome
    assert resource["outcomeDesc"] == record.outcome
    requestor, service = resource["agent"]
    assert requestor["requestor"] is True and service["requestor"] is False
    assert service["who"]["type"] == "Device"
    assert resource["source"]["observer"]["identifier"]["value"] == SERVICE
    entities = [e["what"]["identifier"]["value"] for e in resource["entity"]]
    assert entities[0] == record.hook_instance
    assert (record.fingerprint in entities) == (record.fingerprint is not None)


async def test_provenance_per_card_validates_as_fhir_r4() -> None:
    record, _, key = await accepted_run()
    [resource] = provenances(record, id_seed="seed")
    Provenance.model_validate(resource)
    assert resource["target"] == [
        {
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{record.card_uuids[0]}"},
            "display": "CDS card",
        }
    ]
    author, _assembler = resource["agent"]
    assert author["who"]["type"] == "Device" and author["who"]["display"] == "scripted"
    # What the model read; the model card and prompt template follow as derivations (AI Transparency).
    sources = [e["what"]["identifier"]["value"] for e in resource["entity"] if e["role"] == "source"]
    assert sources[0] == key
    assert record.decision is not None
    assert sources[1:] == list(record.decision.accepted[0].knowledge_ids)
    # With the caller's references (the live path has them; the audit records do not).
    live = provenance(
        record.card_uuids[0],
        recorded=NOW,
        model=ModelIdentity("sglang", "deepseek-ai/DeepSeek-R1"),
        service_id=SERVICE,
        knowledge_ids=("kb.warfarin-inr-monitoring",),
        inputs=(corpus.PATIENT, "MedicationRequest/warfarin"),
    )
    Provenance.model_validate(live)
    assert [e["what"].get("reference") for e in live["entity"]][:2] == [
        corpus.PATIENT,
        "MedicationRequest/warfarin",
    ]


async def test_export_gives_one_event_per_call_and_one_provenance_per_card() -> None:
    run, _, _ = await accepted_run()
    sink = MemoryAuditSink()
    for record in (hook_call(0), run, feedback(), hook_call(1, outcome="ai-ready")):
        sink.write(record)
    resources = list(fhir_export(sink.chain))
    assert [r["resourceType"] for r in resources] == ["AuditEvent", "Provenance", "AuditEvent"]
    assert len({r["id"] for r in resources}) == 3
    assert [r["id"] for r in fhir_export(sink.chain)] == [r["id"] for r in resources]  # stable ids
    for resource in resources:
        model = AuditEvent if resource["resourceType"] == "AuditEvent" else Provenance
        model.model_validate(resource)


# --- no PHI -------------------------------------------------------------------------------------------------


async def records_for_chart(name: str) -> tuple[list[AuditRecord], dict[str, Any]]:
    """Every kind of record as the service would write it for one fixture chart (scripted model)."""
    path = chart_path(name)
    prefetch, _, patient_id = chart_prefetch(path)
    bundle = raw_bundle(path)
    built = build_context(prefetch, NOW)
    knowledge = load_knowledge_base()
    handles = sorted(built.handles.references)[:4]
    found = retrieve(built.context, knowledge)
    cited = list(found.ids[:2]) or ["kb.warfarin-inr-monitoring"]
    document = corpus.answer(
        corpus.suggestion(
            "Consider reviewing the current medication list",
            "The passages recommend a periodic review of the medicines on file.",
            corpus.action(),
            handles,
            cited,
        )
    )
    model = ScriptedModel([ScriptedModel.answer(*[json.dumps(document)] * 5)])
    service = ReviewService(model, build_prompt, parse_sample, knowledge, GovernancePolicy(), samples=5)
    outcome = await service.review(SERVICE, built, f"Patient/{patient_id}")
    key = fingerprint(built.context, ReviewVersion(SERVICE, "chart-review@1", "scripted", knowledge.version))
    run = ai_run_record(
        outcome, fingerprint=key, knowledge_base_version=knowledge.version, sampling=SAMPLING, at=NOW
    )
    patient = raw_patient(bundle)
    name_text = " ".join([*patient["name"][0].get("given", ()), patient["name"][0]["family"]])
    item = FeedbackRecord(
        service_id=SERVICE,
        card_uuid=(run.card_uuids or (str(uuid.uuid4()),))[0],
        outcome="overridden",
        outcome_timestamp="2026-11-25T12:05:00Z",
        override_reason=Coding("patient-declined", "urn:r1cds:override-reason", f"{name_text} declined"),
        user_comment=f"{name_text}, born {patient['birthDate']}, declined",
        tenant="test-ehr",
    )
    call = HookCallRecord(
        at=NOW,
        hook_instance=str(uuid.uuid4()),
        service_id=SERVICE,
        hook="patient-view",
        tenant="test-ehr",
        fingerprint=key,
        timings_ms={"total": 120.0},
        http_status=200,
        outcome="ai-ready" if run.card_uuids else "rules-only",
        card_uuids=run.card_uuids,
    )
    return [call, run, feedback_audit_record(item, at=NOW, user=USER_ID)], bundle


@pytest.mark.parametrize("name", chart_names())
async def test_records_and_their_export_carry_no_phi(name: str) -> None:
    records, bundle = await records_for_chart(name)
    found = identifying(bundle)
    sink = MemoryAuditSink()
    for record in records:
        sink.write(record)
    texts = [stored.body for stored in sink.chain]
    texts += [orjson.dumps(resource).decode() for resource in fhir_export(sink.chain)]
    assert len(texts) >= 4
    for text in texts:
        assert leaks(text, found) == []


def test_the_scan_would_see_a_leak() -> None:
    """Guard against a vacuous pass: the chart's own patient id in a record is caught."""
    name = chart_names()[0]
    path = chart_path(name)
    bundle = raw_bundle(path)
    patient_id = raw_patient(bundle)["id"]
    record = CardFeedbackRecord(
        at=NOW,
        service_id=SERVICE,
        card_uuid="c1",
        outcome="accepted",
        outcome_timestamp=NOW,
        user=f"Patient/{patient_id}",
    )
    assert leaks(canonical(record), identifying(bundle)) == [patient_id]


def test_timestamps_are_utc_everywhere() -> None:
    record = hook_call(at=datetime(2026, 11, 25, 7, 0, tzinfo=timezone(timedelta(hours=-5))))
    assert record.at == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert audit_event(record)["recorded"] == "2026-11-25T12:00:00.000Z"
