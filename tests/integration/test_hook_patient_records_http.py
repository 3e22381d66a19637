"""Issue 19 over real HTTP with the shipped rules: another patient's data is refused (412), and a malformed
record costs only itself (200, the interaction card kept, an info card counting what could not be read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plugin.catalog import shipped_registry
from tests.integration.conftest import ServeApp
from tests.support.asgi_server import ServedApp, serve_asgi
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

pytestmark = pytest.mark.integration

CHART, ORDERS = "r1-chart-review", "r1-order-review"
KEYS = {
    "conditions": "Condition",
    "medications": "MedicationRequest",
    "statements": "MedicationStatement",
    "allergies": "AllergyIntolerance",
    "labs": "Observation",
    "encounters": "Encounter",
    "immunizations": "Immunization",
    "procedures": "Procedure",
}
UNREADABLE = "rule.records-unreadable"
VKA_NSAID = "rule.vka-nsaid"


@pytest.fixture
def api(serve_app: ServeApp) -> Iterator[ServedApp]:
    with serve_app(registry=shipped_registry(clock=lambda: NOW), auth_disabled=True) as served:
        yield served


def call(
    api: ServedApp,
    prefetch: dict[str, Any] | None,
    hook: str = "patient-view",
    service: str = CHART,
    **extra: Any,
) -> httpx.Response:
    context: dict[str, Any] = {
        "userId": "Practitioner/doc-1",
        "patientId": PATIENT_ID,
        **extra.pop("context", {}),
    }
    body = {"hook": hook, "hookInstance": "5f0c3c1e-2f7b-4a44-9d59-0d0a1b2c3d4e", "context": context, **extra}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return httpx.post(f"{api.url}/cds-services/{service}", json=body, timeout=30)


def topics(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {card["source"]["topic"]["code"]: card for card in response.json()["cards"]}


def assert_wrong_patient(response: httpx.Response, *named: str) -> None:
    assert response.status_code == 412, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", "invalid")
    assert "patient other than context.patientId" in issue["diagnostics"]
    for text in named:
        assert text in issue["diagnostics"]
    assert "OTHER" not in response.text  # the other patient's id is never repeated


def test_another_patients_patient_resource_is_412(api: ServedApp) -> None:
    assert_wrong_patient(call(api, {"patient": patient("OTHER")}), "patient (Patient)")


@pytest.mark.parametrize(("key", "resource_type"), sorted(KEYS.items()))
@pytest.mark.parametrize(
    "reference", ["Patient/OTHER", "https://ehr.test.invalid/fhir/Patient/OTHER/_history/2", "urn:uuid:OTHER"]
)
def test_another_patients_prefetch_of_every_type_is_412(
    api: ServedApp, key: str, resource_type: str, reference: str
) -> None:
    prefetch = {"patient": patient(), key: bundle(resource_for(resource_type, reference))}
    assert_wrong_patient(call(api, prefetch), f"{key} ({resource_type})")


def test_a_draft_order_for_another_patient_is_412(api: ServedApp) -> None:
    draft = medication("d-1", "Naproxen 500 MG Oral Tablet", subject="Patient/OTHER", status="draft")
    response = call(
        api,
        {"patient": patient(), "medications": warfarin_naproxen()},
        hook="order-select",
        service=ORDERS,
        context={"draftOrders": bundle(draft), "selections": ["MedicationRequest/d-1"]},
    )
    assert_wrong_patient(response, "draftOrders (MedicationRequest)")


def test_the_patients_own_references_in_every_form_are_accepted(api: ServedApp) -> None:
    """Relative, absolute with a version, urn:uuid resolved by a Patient entry's fullUrl: all this patient."""
    prefetch = {
        "patient": patient(),
        "medications": bundle(
            medication("m-warfarin", "Warfarin Sodium 5 MG Oral Tablet"),
            medication(
                "m-naproxen", "Naproxen 500 MG Oral Tablet", subject="https://ehr/fhir/Patient/p1/_history/3"
            ),
        ),
        "conditions": bundle(
            patient(),
            resource_for("Condition", "urn:uuid:5b1c"),
            full_urls=("urn:uuid:5b1c",),
        ),
        # A Medication names no patient at all: fine.
        "statements": bundle({"resourceType": "Medication", "id": "med-1", "code": {"text": "Warfarin"}}),
    }
    assert VKA_NSAID in topics(call(api, prefetch))


def test_another_patients_data_fetched_back_is_refused(serve_app: ServeApp) -> None:
    """A FHIR server that answers a query for p1 with another patient's record: the call is refused."""

    async def search(request: Request) -> JSONResponse:
        if request.url.path.endswith("/Patient/p1"):
            return JSONResponse(patient())
        if request.url.path.endswith("/MedicationRequest"):
            return JSONResponse(
                bundle(medication("m-1", "Naproxen 500 MG Oral Tablet", subject="Patient/OTHER"))
            )
        return JSONResponse(bundle())

    fhir_app = Starlette(routes=[Route("/fhir/{path:path}", search)])
    with (
        serve_asgi(lambda url: fhir_app, lifespan="off", name="wrong-patient-fhir") as fhir,
        serve_app(registry=shipped_registry(clock=lambda: NOW), auth_disabled=True) as api,
    ):
        response = call(api, None, fhirServer=f"{fhir.url}/fhir")
    assert_wrong_patient(response, "FHIR server returned resources", "medications (MedicationRequest)")


def test_a_malformed_observation_costs_itself_not_the_interaction_card(api: ServedApp) -> None:
    prefetch = {"patient": patient(), "medications": warfarin_naproxen(), "vitals": bundle(malformed_bp())}
    cards = topics(call(api, prefetch))
    assert cards[VKA_NSAID]["indicator"] == "warning"
    unreadable = cards[UNREADABLE]
    assert unreadable["indicator"] == "info"
    assert unreadable["summary"] == "1 lab or vital sign could not be read: safety checks may be incomplete"
    assert "SAFER" in unreadable["detail"]


def test_an_impossible_authored_date_keeps_the_medication_and_its_interaction(api: ServedApp) -> None:
    prefetch = {"patient": patient(), "medications": warfarin_naproxen(authoredOn="2024-02-30")}
    cards = topics(call(api, prefetch))
    assert VKA_NSAID in cards
    assert UNREADABLE not in cards  # the medication was read; only its date is unknown


def test_unreadable_medications_are_counted_on_order_hooks_too(api: ServedApp) -> None:
    broken = medication("m-bad", "Lisinopril 10 MG Oral Tablet", dosageInstruction="twice daily")
    draft = medication("d-1", "Naproxen 500 MG Oral Tablet", status="draft")
    response = call(
        api,
        {
            "patient": patient(),
            "medications": bundle(medication("m-w", "Warfarin Sodium 5 MG Oral Tablet"), broken),
        },
        hook="order-sign",
        service=ORDERS,
        context={"draftOrders": bundle(draft)},
    )
    cards = topics(response)
    assert VKA_NSAID in cards
    assert (
        cards[UNREADABLE]["summary"]
        == "1 medication record could not be read: safety checks may be incomplete"
    )
