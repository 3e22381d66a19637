"""The card preview's parts without services: demo patients, composer, request building, the preview key."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from cds_hooks.auth import EhrAuthenticator
from cds_hooks.errors import AuthenticationFailed, MalformedRequest, PayloadTooLarge
from cds_hooks.preview import PREVIEW_TENANT, PreviewKey, calls, demo, enable_preview
from cds_hooks.preview.handler import PreviewHandler
from cds_hooks.replay import MemoryReplayStore
from cds_hooks.settings import TenantSettings, load_settings
from plugin import terminology
from plugin.catalog import shipped_registry
from plugin.services import HookCall

pytestmark = pytest.mark.unit

BASE = "https://cds.example.org"
REGISTRY = shipped_registry()


def evaluate(prepared: calls.PreparedCall) -> list[tuple[str, str]]:
    service = REGISTRY.get(prepared.service_id)
    request = prepared.request
    call = HookCall(
        service_id=prepared.service_id,
        hook=prepared.hook,
        hook_instance=request["hookInstance"],
        context=request["context"],
        prefetch=request["prefetch"],
        prefetch_issues=(),
        fhir_server=None,
        tenant=None,
    )
    return [(c.source.topic.code, c.indicator) for c in service.evaluate(call).cards if c.source.topic]


@pytest.mark.parametrize("patient", demo.DEMO_PATIENTS, ids=lambda p: p.id)
@pytest.mark.parametrize("hook", ["patient-view", "encounter-start", "encounter-discharge"])
def test_each_demo_patient_triggers_its_rules(patient: demo.DemoPatient, hook: str) -> None:
    declaration = calls.service_for(REGISTRY, hook)
    prepared = calls.from_bundle(demo.demo_bundle(patient.id), declaration, hook, patient.id, [])
    assert prepared.patient_id == patient.id
    raised = {topic for topic, _ in evaluate(prepared)}
    assert set(patient.rules) <= raised
    if hook != "patient-view":
        assert prepared.request["context"]["encounterId"] == f"{patient.id}-e1"


def test_demo_bundles_are_synthetic_and_move_with_today() -> None:
    written = demo.demo_bundle("demo-pregnant", today=date(2026, 11, 20))
    later = demo.demo_bundle("demo-pregnant", today=date(2026, 11, 20) + timedelta(days=400))
    assert written["timestamp"] == "2026-11-20T09:00:00Z"
    assert later["timestamp"] == "2027-12-25T09:00:00Z"
    patients = [e["resource"] for e in later["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patients[0]["birthDate"] == (date(1994, 1, 20) + timedelta(days=400)).isoformat()
    assert [e["resource"]["id"] for e in later["entry"]] == [e["resource"]["id"] for e in written["entry"]]
    for patient in demo.DEMO_PATIENTS:
        bundle = demo.demo_bundle(patient.id)
        assert bundle["meta"]["tag"][0]["code"] == "synthetic"
        [person] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        assert person["id"] == patient.id and "(synthetic)" in person["name"][0]["text"]


@pytest.mark.parametrize("product", demo.PRODUCTS, ids=lambda p: p.code)
def test_every_composer_product_resolves_to_its_ingredient(product: demo.Product) -> None:
    ingredients = terminology.ingredients_of(product.code, product.display)
    assert ingredients, f"{product.display} resolves to no ingredient"
    assert any(i.split()[0] in product.display.lower() for i in ingredients)
    assert terminology.classes_of_product(product.code, product.display)


def test_draft_order_is_a_valid_fhir_draft() -> None:
    order = demo.draft_medication_request("p-1", "310965", 400, "Q6H-PRN", "enc-1")
    assert order["status"] == "draft" and order["subject"] == {"reference": "Patient/p-1"}
    assert order["medicationCodeableConcept"]["coding"][0]["code"] == "310965"
    dosage = order["dosageInstruction"][0]
    assert dosage["text"] == "400 mg every 6 hours as needed" and dosage["asNeededBoolean"] is True
    assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 6, "periodUnit": "h"}
    assert order["encounter"] == {"reference": "Encounter/enc-1"}
    assert order["id"] != demo.draft_medication_request("p-1", "310965", 400, "QD")["id"]


@pytest.mark.parametrize(
    ("code", "dose", "frequency", "why"),
    [
        ("000", 5, "QD", "not in the composer"),
        ("855332", 0, "QD", "dose must be"),
        ("855332", 1e9, "QD", "dose must be"),
        ("855332", 5, "hourly", "unknown frequency"),
    ],
)
def test_draft_order_refuses_bad_choices(code: str, dose: float, frequency: str, why: str) -> None:
    with pytest.raises(MalformedRequest, match=why):
        demo.draft_medication_request("p-1", code, dose, frequency)


def test_warfarin_and_ibuprofen_drafts_raise_the_interaction_on_both_order_hooks() -> None:
    orders = [
        demo.draft_medication_request("demo-pregnant", "855332", 5, "QD"),
        demo.draft_medication_request("demo-pregnant", "310965", 400, "TID"),
    ]
    for hook in ("order-select", "order-sign"):
        declaration = calls.service_for(REGISTRY, hook)
        prepared = calls.from_bundle(demo.demo_bundle("demo-pregnant"), declaration, hook, None, orders)
        assert ("rule.vka-nsaid", "warning") in evaluate(prepared)
        if hook == "order-select":
            assert prepared.request["context"]["selections"] == [
                f"MedicationRequest/{o['id']}" for o in orders
            ]


@pytest.mark.parametrize(
    ("text", "error", "why"),
    [
        ("nope", MalformedRequest, "not JSON"),
        ("[]", MalformedRequest, "not a FHIR Bundle"),
        ('{"resourceType": "Observation"}', MalformedRequest, "not a FHIR Bundle"),
        ('{"resourceType": "Bundle", "entry": {}}', MalformedRequest, "not a list"),
        (
            '{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition"}}]}',
            MalformedRequest,
            "no Patient",
        ),
        ('{"resourceType": "Bundle"}' + " " * 2000, PayloadTooLarge, "limit"),
    ],
)
def test_uploads_that_are_not_usable_bundles_are_refused(text: str, error: type[Exception], why: str) -> None:
    with pytest.raises(error, match=why):
        calls.parse_bundle(text, 1024)


def test_a_bundle_with_two_patients_needs_one_named() -> None:
    entries = [{"resource": {"resourceType": "Patient", "id": i, "gender": "other"}} for i in ("a", "b")]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    declaration = calls.service_for(REGISTRY, "patient-view")
    with pytest.raises(MalformedRequest, match="2 patients: pick one"):
        calls.from_bundle(bundle, declaration, "patient-view", None, [])
    assert calls.from_bundle(bundle, declaration, "patient-view", "b", []).patient_id == "b"
    assert [p["id"] for p in calls.patients_of(bundle)] == ["a", "b"]
    odd = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "a b/c"}}]}
    with pytest.raises(MalformedRequest, match="not a valid FHIR id"):
        calls.from_bundle(odd, declaration, "patient-view", None, [])


async def test_fhir_server_source_sends_no_prefetch_so_the_service_fetches_back() -> None:
    source = calls.FhirSource(
        kind="fhir",
        fhir_server="https://fhir.example.org/r4/",
        patient_id="p9",
        access_token="tok",
        encounter_id="e2",
    )
    order = demo.draft_medication_request("p9", "855332", 5, "QD")
    declaration = calls.service_for(REGISTRY, "order-select")
    prepared = await calls.from_fhir_server(source, declaration, "order-select", [order])
    request = prepared.request
    assert "prefetch" not in request and request["fhirServer"] == "https://fhir.example.org/r4"
    assert request["fhirAuthorization"]["access_token"] == "tok"
    assert request["context"]["encounterId"] == "e2"
    assert request["context"]["selections"] == [f"MedicationRequest/{order['id']}"]
    with pytest.raises(MalformedRequest, match="compose an order"):
        await calls.from_fhir_server(source, calls.service_for(REGISTRY, "order-sign"), "order-sign", [])


def test_fhir_servers_the_fetch_back_would_refuse_are_refused_up_front() -> None:
    with pytest.raises(MalformedRequest, match="plain-http"):
        calls.check_server("http://fhir.example.org", load_settings())
    allowlisted = load_settings(fhir_server_allowlist=("https://ok.example.org/",))
    with pytest.raises(MalformedRequest, match="allowlist"):
        calls.check_server("https://other.example.org/fhir", allowlisted)
    calls.check_server("https://ok.example.org/fhir", allowlisted)


def test_enable_preview_adds_only_a_public_key_tenant_and_only_when_enabled() -> None:
    with pytest.raises(ValueError, match="not enabled"):
        enable_preview(load_settings(public_base_url=BASE))
    ehr = TenantSettings(
        name="ehr", issuer="https://ehr.example.org", jku_allowlist=("https://ehr.example.org/jwks",)
    )
    settings, key = enable_preview(load_settings(public_base_url=BASE, preview_enabled=True, tenants=(ehr,)))
    assert [t.name for t in settings.tenants] == ["ehr", PREVIEW_TENANT]
    [preview] = [t for t in settings.tenants if t.name == PREVIEW_TENANT]
    assert preview.issuer == f"{BASE}/preview" and preview.jwks == key.jwks
    [jwk] = key.jwks["keys"]
    assert {"d", "p", "q"}.isdisjoint(jwk) and jwk["crv"] == "P-384"
    again, other = enable_preview(settings)
    assert [t.name for t in again.tenants] == ["ehr", PREVIEW_TENANT] and other.jwks != key.jwks


async def test_preview_tokens_verify_only_where_the_preview_tenant_exists() -> None:
    enabled, key = enable_preview(load_settings(public_base_url=BASE, preview_enabled=True))
    audience = f"{BASE}/cds-services/r1-chart-review"
    async with httpx.AsyncClient() as http:
        verifier = EhrAuthenticator(enabled, http, MemoryReplayStore())
        identity = await verifier.authenticate(key.authorization(audience), audience)
        assert identity.tenant == PREVIEW_TENANT
        with pytest.raises(AuthenticationFailed, match="aud"):
            await verifier.authenticate(key.authorization(audience), f"{audience}/feedback")
        disabled = EhrAuthenticator(load_settings(public_base_url=BASE), http, MemoryReplayStore())
        with pytest.raises(AuthenticationFailed, match="unknown issuer"):
            await disabled.authenticate(key.authorization(audience), audience)


def test_page_lists_the_demo_patients_hooks_and_products_escaped() -> None:
    settings, key = enable_preview(load_settings(public_base_url=BASE, preview_enabled=True))
    page = PreviewHandler(settings, REGISTRY, key).page()
    text = bytes(page.body).decode()
    for patient in demo.DEMO_PATIENTS:
        assert f'value="{patient.id}"' in text
    for hook in ("patient-view", "order-select", "order-sign", "encounter-start", "encounter-discharge"):
        assert f'<option value="{hook}">' in text
    assert "diphenhydrAMINE Hydrochloride 25 MG Oral Tablet (RxNorm 1049630)" in text
    assert "$" not in text  # every template placeholder was filled
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert PreviewKey.generate(BASE).issuer == f"{BASE}/preview"
