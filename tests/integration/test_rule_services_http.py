"""The shipped rule services over real HTTP: fixture charts in, rule cards out, built as `r1cds fire` does."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cds_hooks import fire
from plugin.catalog import shipped_registry
from plugin.fhir_search import FhirStore
from tests.integration.conftest import ServeApp
from tests.support.charts import USER_ID, chart_path, draft_orders, ibuprofen_draft, raw_bundle

pytestmark = pytest.mark.integration

FHIR_BASE = "https://ehr.test.invalid/fhir"


def post_hook(
    client: httpx.Client,
    base_url: str,
    service_id: str,
    hook: str,
    chart: str,
    drafts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Discovery's templates, the chart's answers to them and the hook context, posted as an EHR would."""
    store = FhirStore.from_bundles([raw_bundle(chart_path(chart))])
    patient_id = fire.pick_patient(store, None)
    templates = fire.service_templates(client, base_url, service_id, hook)
    context = fire.build_context(hook, store, patient_id, USER_ID, None, drafts)
    prefetch = fire.build_prefetch(templates, context, store, FHIR_BASE)
    assert set(prefetch) == set(templates)
    request = fire.build_request(hook, context, prefetch, None)
    response = client.post(f"{base_url}/cds-services/{service_id}", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def topics(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {card["source"]["topic"]["code"]: card for card in body["cards"]}


def test_patient_view_returns_the_charts_rule_cards(serve_app: ServeApp) -> None:
    with (
        serve_app(registry=shipped_registry(), auth_disabled=True) as api,
        httpx.Client(timeout=30) as client,
    ):
        body = post_hook(client, api.url, "r1-chart-review", "patient-view", "Derek_Becker")
        discovery = client.get(f"{api.url}/cds-services").json()
    cards = topics(body)
    # Every card's source opens the published model card; discovery names it too (it has no link field).
    assert {card["source"]["url"] for card in body["cards"]} == {f"{api.url}/about"}
    assert all(
        s["description"].endswith(f"Model card and source attributes: {api.url}/about")
        for s in discovery["services"]
    )
    assert {"rule.vka-nsaid", "rule.digoxin-interacting", "rule.inr-monitoring"} <= set(cards)
    bleeding = cards["rule.vka-nsaid"]
    assert bleeding["indicator"] == "warning"
    assert "Warfarin with naproxen" in bleeding["summary"]
    assert "Warfarin Sodium 5 MG Oral Tablet" in bleeding["detail"]
    assert "suggestions" not in bleeding  # nothing to remove: both drugs are current medications
    inr = cards["rule.inr-monitoring"]
    (action,) = inr["suggestions"][0]["actions"]
    assert action["type"] == "create" and action["resource"]["resourceType"] == "ServiceRequest"
    assert action["resource"]["code"]["coding"][0]["code"] == "6301-6"
    assert all(len(card["uuid"]) == 36 and card["overrideReasons"] for card in body["cards"])


def test_order_sign_flags_a_draft_ibuprofen_for_a_warfarin_patient(serve_app: ServeApp) -> None:
    store = FhirStore.from_bundles([raw_bundle(chart_path("Derek_Becker"))])
    draft = ibuprofen_draft(fire.pick_patient(store, None))
    with (
        serve_app(registry=shipped_registry(), auth_disabled=True) as api,
        httpx.Client(timeout=30) as client,
    ):
        body = post_hook(
            client, api.url, "r1-order-review", "order-sign", "Derek_Becker", draft_orders(draft)
        )
    cards = topics(body)
    bleeding = cards["rule.vka-nsaid"]
    assert bleeding["indicator"] == "warning"
    assert "ibuprofen" in bleeding["summary"]
    assert "Ibuprofen 600 MG Oral Tablet — draft order" in bleeding["detail"]
    (suggestion,) = bleeding["suggestions"]
    assert bleeding["selectionBehavior"] == "at-most-one"
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove the draft order for Ibuprofen 600 MG Oral Tablet",
            "resourceId": f"MedicationRequest/{draft['id']}",
        }
    ]
    # Every order card is about the draft: the only thing an order card offers to remove is that draft.
    for card in body["cards"]:
        targets = {
            a["resourceId"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"
        }
        assert targets == {f"MedicationRequest/{draft['id']}"}
    assert set(cards) == {"rule.vka-nsaid", "rule.duplicate-therapy"}  # Derek also takes naproxen
