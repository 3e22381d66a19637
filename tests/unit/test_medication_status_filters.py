"""Which MedicationRequest and MedicationStatement statuses the rules see as current, through the prefetch templates."""

from __future__ import annotations

import pytest

from cds_hooks.prefetch import render_template
from plugin.catalog import CHART_PREFETCH, ORDER_PREFETCH
from plugin.context.build import build_context
from plugin.fhir_search import FhirStore
from plugin.rules.model import RuleFacts
from tests.support.charts import NOW, JsonDict
from tests.support.rule_cases import PATIENT_ID, born, on

BASE = "https://ehr.test.invalid/fhir"
WARFARIN = {
    "coding": [
        {
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "855332",
            "display": "Warfarin Sodium 5 MG Oral Tablet",
        }
    ]
}


def _patient() -> JsonDict:
    return {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female", "birthDate": born(60)}


def _request(status: str) -> JsonDict:
    return {
        "resourceType": "MedicationRequest",
        "id": f"request-{status}",
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": WARFARIN,
        "authoredOn": on(30),
    }


def _statement(status: str) -> JsonDict:
    return {
        "resourceType": "MedicationStatement",
        "id": f"statement-{status}",
        "status": status,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": WARFARIN,
        "effectiveDateTime": on(30),
    }


def _exposures(resource: JsonDict, templates: dict[str, str]) -> list[str]:
    """The exposures the rules see when an EHR answers the service's own prefetch templates from its records."""
    store = FhirStore.from_bundles(
        [
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": _patient()}, {"resource": resource}],
            }
        ]
    )
    hook = {"patientId": PATIENT_ID, "userId": "Practitioner/1"}
    prefetch = {
        key: store.query(render_template(template, hook), BASE) for key, template in templates.items()
    }
    return [e.label for e in RuleFacts.of(build_context(prefetch, NOW).context).exposures]


@pytest.mark.parametrize("templates", [CHART_PREFETCH, ORDER_PREFETCH], ids=["chart", "orders"])
@pytest.mark.parametrize(
    ("status", "current"),
    [
        ("active", True),
        ("on-hold", False),
        ("completed", False),
        ("stopped", False),
        ("cancelled", False),
        ("entered-in-error", False),
        ("draft", False),
        ("unknown", False),
    ],
)
def test_medication_request_statuses(templates: dict[str, str], status: str, current: bool) -> None:
    # The templates ask the EHR for status=active only; an on-hold order is read as current when an EHR
    # sends it anyway (the builder keeps on-hold), but the services do not ask for it.
    assert bool(_exposures(_request(status), templates)) is current


@pytest.mark.parametrize("templates", [CHART_PREFETCH, ORDER_PREFETCH], ids=["chart", "orders"])
@pytest.mark.parametrize(
    ("status", "current"),
    [
        ("active", True),
        ("intended", False),
        ("completed", False),
        ("stopped", False),
        ("not-taken", False),
        ("entered-in-error", False),
        ("on-hold", False),
        ("unknown", False),
    ],
)
def test_medication_statement_statuses(templates: dict[str, str], status: str, current: bool) -> None:
    # What the patient reports taking reaches the rules as an exposure like a prescription.
    assert bool(_exposures(_statement(status), templates)) is current


@pytest.mark.parametrize("status", ["active", "on-hold", "intended"])
def test_the_builder_keeps_current_statuses_an_ehr_sends_unasked(status: str) -> None:
    # A prefetch an EHR fills itself may carry more than status=active: the builder still keeps only
    # current medications (on-hold requests and intended statements count as current).
    resource = _statement(status) if status == "intended" else _request(status)
    key = "statements" if resource["resourceType"] == "MedicationStatement" else "medications"
    prefetch = {
        "patient": _patient(),
        key: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": resource}]},
    }
    assert len(RuleFacts.of(build_context(prefetch, NOW).context).exposures) == 1
