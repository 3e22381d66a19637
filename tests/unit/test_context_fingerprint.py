"""Fingerprint properties over fixture charts: blind to order, ids and irrelevant fields, sensitive to facts."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.catalog import ORDER_PREFETCH
from plugin.context.build import build_context
from plugin.context.fingerprint import ReviewVersion, fingerprint
from tests.support.charts import (
    LOINC,
    NOW,
    SNOMED,
    UCUM,
    USER_ID,
    JsonDict,
    add_entry,
    bundles_in,
    chart_path,
    chart_prefetch,
    copy_json,
    draft_orders,
    medication_request,
    prefetch_from_store,
    rename_ids,
    shuffle_entries,
)
from tests.support.fixtures_paths import require_shared_fixtures

pytestmark = pytest.mark.unit

# Anticoagulated with renal impairment, the >200-lab CKD chart, a pregnancy with no medications, a child
# with many allergies: different shapes of chart, few enough to keep the properties fast.
CHARTS = ("Clarine_O'Keefe", "Renea_Quigley", "Shameka_Marvin", "Daisey_Johns")
VERSION = ReviewVersion(
    service_id="r1-chart-review",
    prompt_version="chart-v3",
    model_id="deepseek-r1",
    knowledge_base_version="kb-2026.11",
)
ORDER_VERSION = dataclasses.replace(VERSION, service_id="r1-order-review")
PROPERTIES = settings(max_examples=12, deadline=None, derandomize=True, database=None)
PRODUCTS = (
    ("197806", "Ibuprofen 600 MG Oral Tablet"),
    ("198014", "Naproxen 500 MG Oral Tablet"),
    ("308191", "Amoxicillin 500 MG Oral Capsule"),
    ("314076", "Lisinopril 10 MG Oral Tablet"),
    ("198335", "Sulfamethoxazole 800 MG / Trimethoprim 160 MG Oral Tablet"),
)


@pytest.fixture(autouse=True, scope="module")
def _shared_fixtures() -> None:
    require_shared_fixtures()


def chart(name: str) -> tuple[JsonDict, str]:
    prefetch, _, patient_id = chart_prefetch(chart_path(name))
    return prefetch, patient_id


def key(prefetch: JsonDict, version: ReviewVersion = VERSION, drafts: JsonDict | None = None) -> str:
    return fingerprint(build_context(prefetch, NOW, draft_orders=drafts).context, version)


def resources(prefetch: JsonDict) -> Iterator[JsonDict]:
    for bundle in bundles_in(prefetch):
        for entry in bundle.get("entry") or ():
            yield entry["resource"]
    if isinstance(prefetch.get("patient"), dict):
        yield prefetch["patient"]


# --- invariance -------------------------------------------------------------------------------------------


@PROPERTIES
@given(name=st.sampled_from(CHARTS), rng=st.randoms(use_true_random=False))
def test_unchanged_by_entry_order(name: str, rng: random.Random) -> None:
    prefetch, _ = chart(name)
    assert key(shuffle_entries(prefetch, rng)) == key(prefetch)


@PROPERTIES
@given(name=st.sampled_from(CHARTS), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_unchanged_by_consistent_renaming_of_ids(name: str, seed: int) -> None:
    prefetch, patient_id = chart(name)
    renamed, mapping = rename_ids(prefetch, random.Random(seed))
    assert patient_id in mapping
    assert renamed["patient"]["id"] == mapping[patient_id]
    assert all(
        r["subject"]["reference"] == f"Patient/{mapping[patient_id]}"
        for r in resources(renamed)
        if "subject" in r
    )
    assert key(renamed) == key(prefetch)


def _meta(resource: JsonDict) -> None:
    resource["meta"] = {"versionId": "42", "lastUpdated": "2026-11-24T09:00:00Z", "source": "#ehr-node-7"}


def _narrative(resource: JsonDict) -> None:
    resource["text"] = {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Edited</div>',
    }


def _identifiers(resource: JsonDict) -> None:
    resource["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": f"X-{resource.get('id', '')[:8]}"}]


def _encounter_participant(resource: JsonDict) -> None:
    if resource.get("resourceType") == "Encounter":
        resource["participant"] = [
            {"individual": {"reference": "Practitioner/another", "display": "Dr. Other"}}
        ]


def _performer_and_requester(resource: JsonDict) -> None:
    if resource.get("resourceType") == "Observation":
        resource["performer"] = [{"reference": "Organization/another-lab"}]
    if resource.get("resourceType") == "MedicationRequest":
        resource["requester"] = {"reference": "Practitioner/another"}


def _patient_contact_details(resource: JsonDict) -> None:
    if resource.get("resourceType") == "Patient":
        resource["name"] = [{"family": "Renamed", "given": ["Someone"]}]
        resource["telecom"] = [{"system": "phone", "value": "555-000-0000"}]
        resource["address"] = [{"line": ["1 Other Street"], "city": "Elsewhere", "postalCode": "99999"}]


IRRELEVANT_EDITS: dict[str, Callable[[JsonDict], None]] = {
    "meta": _meta,
    "narrative": _narrative,
    "identifiers": _identifiers,
    "encounter participant": _encounter_participant,
    "performer and requester": _performer_and_requester,
    "patient contact details": _patient_contact_details,
}


@PROPERTIES
@given(
    name=st.sampled_from(CHARTS),
    edits=st.sets(st.sampled_from(sorted(IRRELEVANT_EDITS)), min_size=1),
)
def test_unchanged_by_clinically_irrelevant_fields(name: str, edits: set[str]) -> None:
    prefetch, _ = chart(name)
    edited = copy_json(prefetch)
    for resource in resources(edited):
        for edit in edits:
            IRRELEVANT_EDITS[edit](resource)
    assert edited != prefetch
    assert key(edited) == key(prefetch)


# --- sensitivity ------------------------------------------------------------------------------------------


def _new_medication(prefetch: JsonDict, patient_id: str) -> None:
    add_entry(
        prefetch,
        "medications",
        medication_request(
            "new-amiodarone", patient_id, "833528", "Amiodarone hydrochloride 200 MG Oral Tablet"
        ),
    )


def _new_allergy(prefetch: JsonDict, patient_id: str) -> None:
    add_entry(
        prefetch,
        "allergies",
        {
            "resourceType": "AllergyIntolerance",
            "id": "new-penicillin-allergy",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "confirmed"}]},
            "type": "allergy",
            "category": ["medication"],
            "criticality": "high",
            "code": {"coding": [{"system": SNOMED, "code": "91936005", "display": "Allergy to penicillin"}]},
            "patient": {"reference": f"Patient/{patient_id}"},
        },
    )


def _abnormal_potassium_today(prefetch: JsonDict, patient_id: str) -> None:
    add_entry(
        prefetch,
        "labs",
        {
            "resourceType": "Observation",
            "id": "new-potassium",
            "status": "final",
            "category": [{"coding": [{"code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": "6298-4", "display": "Potassium"}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": NOW.isoformat(),
            "valueQuantity": {"value": 6.4, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
        },
    )


NEW_FACTS: dict[str, Callable[[JsonDict, str], None]] = {
    "medication": _new_medication,
    "allergy": _new_allergy,
    "abnormal potassium": _abnormal_potassium_today,
}


@PROPERTIES
@given(name=st.sampled_from(CHARTS), fact=st.sampled_from(sorted(NEW_FACTS)))
def test_changed_by_a_new_clinical_fact(name: str, fact: str) -> None:
    prefetch, patient_id = chart(name)
    changed = copy_json(prefetch)
    NEW_FACTS[fact](changed, patient_id)
    assert key(changed) != key(prefetch)


@PROPERTIES
@given(
    name=st.sampled_from(CHARTS),
    field=st.sampled_from([f.name for f in dataclasses.fields(ReviewVersion)]),
    suffix=st.text(min_size=1, max_size=8),
)
def test_changed_by_any_part_of_the_review_version(name: str, field: str, suffix: str) -> None:
    prefetch, _ = chart(name)
    context = build_context(prefetch, NOW).context
    other = dataclasses.replace(VERSION, **{field: getattr(VERSION, field) + suffix})
    assert fingerprint(context, other) != fingerprint(context, VERSION)


def test_every_review_version_field_is_exercised() -> None:
    assert {f.name for f in dataclasses.fields(ReviewVersion)} == {
        "service_id",
        "prompt_version",
        "model_id",
        "knowledge_base_version",
    }


# --- order hooks ------------------------------------------------------------------------------------------


def _drafts(patient_id: str, products: list[tuple[str, str]]) -> JsonDict:
    return draft_orders(
        *(
            medication_request(f"draft-{code}", patient_id, code, display, status="draft")
            for code, display in products
        )
    )


def _order_key(name: str, hook_context: dict[str, Any]) -> str:
    _, store, patient_id = chart_prefetch(chart_path(name))
    extra = {k: v for k, v in hook_context.items() if k not in ("patientId", "userId")}
    prefetch = prefetch_from_store(store, patient_id, ORDER_PREFETCH, **extra)
    drafts = copy_json(hook_context["draftOrders"])
    return key(prefetch, ORDER_VERSION, drafts)


@PROPERTIES
@given(
    name=st.sampled_from(CHARTS),
    products=st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3, unique=True),
    rng=st.randoms(use_true_random=False),
)
def test_order_select_and_order_sign_of_the_same_orders_share_a_key(
    name: str, products: list[tuple[str, str]], rng: random.Random
) -> None:
    _, patient_id = chart(name)
    drafts = _drafts(patient_id, products)
    select = {
        "userId": USER_ID,
        "patientId": patient_id,
        "selections": [f"MedicationRequest/draft-{code}" for code, _ in products],
        "draftOrders": drafts,
    }
    # The EHR may list the same orders in another order when the clinician signs.
    signed = dict(drafts, entry=rng.sample(drafts["entry"], len(drafts["entry"])))
    sign = {"userId": USER_ID, "patientId": patient_id, "draftOrders": signed}
    assert _order_key(name, select) == _order_key(name, sign)


@PROPERTIES
@given(
    name=st.sampled_from(CHARTS),
    first=st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3, unique=True),
    second=st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3, unique=True),
)
def test_different_draft_orders_get_different_keys(
    name: str, first: list[tuple[str, str]], second: list[tuple[str, str]]
) -> None:
    _, patient_id = chart(name)
    same = set(first) == set(second)
    first_key = _order_key(name, {"patientId": patient_id, "draftOrders": _drafts(patient_id, first)})
    second_key = _order_key(name, {"patientId": patient_id, "draftOrders": _drafts(patient_id, second)})
    assert (first_key == second_key) == same


def test_chart_and_order_services_do_not_share_keys() -> None:
    prefetch, patient_id = chart("Derek_Becker")
    drafts = _drafts(patient_id, [PRODUCTS[0]])
    assert key(prefetch, VERSION, drafts) != key(prefetch, ORDER_VERSION, drafts)
