"""Issue 19 in the core: whose data a resource is, and malformed records costing only themselves."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cds_hooks.app import create_app
from cds_hooks.settings import load_settings
from plugin.audit import HookCallRecord, MemoryAuditSink
from plugin.catalog import shipped_registry
from plugin.context.build import build_context
from plugin.context.fhir_parse import ResourceRejected, validated
from plugin.context.model import ClinicalContext, Demographics, SkippedResource
from plugin.context.patient import belongs, foreign_resources, referenced_patient
from plugin.rules.model import RuleFacts
from plugin.rules.resolution import UNREADABLE_RULE_ID, records_unreadable
from tests.support.asgi_server import unused_loopback_url
from tests.support.patient_records import (
    NOW,
    PATIENT_ID,
    bundle,
    malformed_bp,
    medication,
    patient,
    resource_for,
    warfarin_naproxen,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/p1", "p1"),
        ("Patient/p1/_history/4", "p1"),
        ("https://ehr.example/fhir/Patient/p1", "p1"),
        ("https://ehr.example/fhir/Patient/p1/_history/2", "p1"),
        ("urn:uuid:2f6c", "2f6c"),  # unresolved: the uuid is read as the id (Synthea's convention)
        ("urn:uuid:resolved", "p1"),  # resolved through a Patient entry's fullUrl
        ("Group/g1", None),
        ("#contained", None),
        ("", None),
    ],
)
def test_references_resolve_to_the_patient_they_name(reference: str, expected: str | None) -> None:
    assert referenced_patient(reference, {"urn:uuid:resolved": "p1"}) == expected


def test_what_belongs_to_the_patient() -> None:
    assert belongs(patient(), PATIENT_ID, {})
    assert not belongs(patient("OTHER"), PATIENT_ID, {})
    assert belongs({"resourceType": "Medication", "id": "x", "code": {"text": "Warfarin"}}, PATIENT_ID, {})
    assert belongs(resource_for("AllergyIntolerance", "Patient/p1"), PATIENT_ID, {})
    assert not belongs(resource_for("Immunization", "Patient/OTHER"), PATIENT_ID, {})
    assert not belongs(resource_for("Condition", "Group/g1"), PATIENT_ID, {})
    # No reference string at all (identifier only): names no patient we can check, so nothing to refuse.
    assert belongs({"resourceType": "Condition", "subject": {"display": "someone"}}, PATIENT_ID, {})


def test_foreign_resources_name_keys_and_types_only() -> None:
    values: dict[str, Any] = {
        "patient": patient(),
        "medications": bundle(medication("a", "Warfarin"), medication("b", "Naproxen", subject="Patient/x")),
        "none": None,
    }
    [found] = foreign_resources(values, PATIENT_ID)
    assert (found.source, found.resource_type) == ("medications", "MedicationRequest")


def test_the_builder_never_uses_another_patients_resource() -> None:
    prefetch = {
        "patient": patient(),
        "medications": bundle(
            medication("m-w", "Warfarin Sodium 5 MG Oral Tablet"),
            medication("m-n", "Naproxen 500 MG Oral Tablet", subject="Patient/OTHER"),
        ),
    }
    draft = medication("d-1", "Aspirin 81 MG Oral Tablet", subject="Patient/OTHER", status="draft")
    built = build_context(prefetch, NOW, draft_orders=bundle(draft), patient_id=PATIENT_ID)
    assert [m.ingredients for m in built.context.medications] == [("warfarin",)]
    assert built.context.draft_orders == ()
    assert {(s.resource_type, s.source, s.reason) for s in built.context.skipped} == {
        ("MedicationRequest", "medications", "another patient's record"),
        ("MedicationRequest", "draftOrders", "another patient's record"),
    }
    # Without a patient id (callers that have none) nothing is filtered.
    assert len(build_context(prefetch, NOW).context.medications) == 2


def test_an_impossible_date_is_read_as_unknown_not_as_a_missing_drug() -> None:
    raw = medication("m", "Naproxen 500 MG Oral Tablet", authoredOn="2024-02-30")
    assert validated(raw).authoredOn is None
    built = build_context({"medications": bundle(raw)}, NOW)
    [naproxen] = built.context.medications
    assert naproxen.authored_days_ago is None and built.context.skipped == ()
    # Any other invalid field still rejects the resource (and it is reported).
    with pytest.raises(ResourceRejected):
        validated({**raw, "status": 3})
    with pytest.raises(ResourceRejected):
        validated({**raw, "dosageInstruction": "twice daily"})


def test_a_component_without_a_code_is_skipped_and_reported() -> None:
    built = build_context({"vitals": bundle(malformed_bp()), "medications": warfarin_naproxen()}, NOW)
    assert len(built.context.medications) == 2
    [skipped] = built.context.skipped
    assert (skipped.resource_type, skipped.unreadable) == ("Observation", True)


def test_a_reader_failure_costs_the_resource_not_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from plugin.context import build

    def broken(self: Any, source: str, raw: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(build._Builder, "allergy", broken)
    built = build_context(
        {
            "allergies": bundle(resource_for("AllergyIntolerance", "Patient/p1")),
            "medications": warfarin_naproxen(),
        },
        NOW,
    )
    assert len(built.context.medications) == 2
    assert [(s.resource_type, s.reason) for s in built.context.skipped] == [
        ("AllergyIntolerance", "invalid AllergyIntolerance (KeyError)")
    ]


def facts(*skipped: SkippedResource) -> RuleFacts:
    context = ClinicalContext(
        demographics=Demographics(age_years=50, sex="female"),
        problems=(),
        medications=(),
        allergies=(),
        labs=(),
        encounters=(),
        immunizations=(),
        procedures=(),
        draft_orders=(),
        skipped=skipped,
    )
    return RuleFacts.of(context)


def test_the_unreadable_records_finding_counts_by_kind() -> None:
    two_meds = facts(
        SkippedResource("MedicationRequest", "medications", "invalid authoredOn"),
        SkippedResource("MedicationStatement", "statements", "medication not coded"),
    )
    [finding] = records_unreadable(two_meds)
    assert (finding.rule_id, finding.severity, finding.evidence) == (
        UNREADABLE_RULE_ID,
        "info",
        ("kb.records-unreadable",),
    )
    assert finding.summary == "2 medication records could not be read: safety checks may be incomplete"
    mixed = facts(
        SkippedResource("MedicationRequest", "medications", "invalid"),
        SkippedResource("Observation", "labs", "invalid"),
        SkippedResource("Observation", "labs", "invalid"),
    )
    [finding] = records_unreadable(mixed)
    assert finding.summary == (
        "2 labs or vital signs and 1 medication record could not be read: safety checks may be incomplete"
    )
    many = facts(*(SkippedResource(t, "k", "invalid") for t in ("Condition", "Procedure", "Encounter")))
    [finding] = records_unreadable(many)
    assert finding.summary == "3 records could not be read: safety checks may be incomplete"


def test_deliberately_ignored_resources_are_not_counted() -> None:
    assert (
        list(records_unreadable(facts(SkippedResource("Task", "draftOrders", "x", unreadable=False)))) == []
    )
    # Unused types are never validated; older readings beyond those needed are never read.
    fine = [
        {
            "resourceType": "Observation",
            "id": f"ok-{day}",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
            "effectiveDateTime": f"2026-11-{day:02d}",
            "valueQuantity": {
                "value": 1.0,
                "unit": "mg/dL",
                "system": "http://unitsofmeasure.org",
                "code": "mg/dL",
            },
        }
        for day in range(1, 6)
    ]
    old_invalid_creatinine = [
        {**fine[0], "id": f"old-{day}", "effectiveDateTime": f"2025-01-{day:02d}", "valueQuantity": "bad"}
        for day in range(1, 4)
    ]
    unused = [{"resourceType": "DocumentReference", "id": "doc", "status": 7}]
    built = build_context({"labs": bundle(*fine, *old_invalid_creatinine, *unused)}, NOW)
    assert built.context.skipped == ()
    assert len(built.context.labs[0].measurements) == 4


async def test_a_wrong_patient_call_is_refused_and_audited_with_its_status() -> None:
    sink = MemoryAuditSink()
    redis_url = unused_loopback_url().replace("http://", "redis://") + "/0"  # nothing listens: never used
    app = create_app(
        load_settings(auth_disabled=True, redis_url=redis_url),
        shipped_registry(clock=lambda: NOW),
        audit=sink,
    )
    body = {
        "hook": "patient-view",
        "hookInstance": "instance-412",
        "context": {"patientId": PATIENT_ID, "userId": "Practitioner/1"},
        "prefetch": {
            "patient": patient(),
            "medications": bundle(medication("m", "Naproxen", subject="Patient/OTHER")),
        },
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://r1cds.test") as client:
            response = await client.post("/cds-services/r1-chart-review", json=body)
        await app.state.audit_trail.flush()
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"
    [record] = sink.records
    assert isinstance(record, HookCallRecord)
    assert (record.hook_instance, record.http_status, record.outcome, record.card_uuids) == (
        "instance-412",
        412,
        "error",
        (),
    )
