"""Rule cards of the shipped services on the wire: invariants, basis, actions, draft scoping and no PHI."""

from __future__ import annotations

import dataclasses
import functools
import re
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_hooks import fire, render
from cds_hooks import protocol as wire
from plugin.catalog import RuleService, shipped_registry
from plugin.fhir_search import FhirStore
from plugin.knowledge import KnowledgeEntry, load_knowledge_base
from plugin.services import HookCall, PrefetchIssue, ServiceRegistry
from tests.support.charts import (
    BASE_URL,
    NOW,
    USER_ID,
    JsonDict,
    add_entry,
    chart_names,
    chart_path,
    draft_orders,
    medication_request,
    raw_bundle,
)
from tests.support.phi import identifying, leaks
from tests.support.rule_cases import DRUGS, penicillin_allergy

pytestmark = pytest.mark.unit

INDICATORS = frozenset({"info", "warning", "critical"})
EVIDENCE_LINE = re.compile(r"^\d+\. \[(?P<title>[^\]]+)\]\((?P<url>[^)\s]+)\) — .+")
BARE_HANDLE = re.compile(r"^- [A-Z]\d+$")
CHART_SERVICE, ORDER_SERVICE, DISCHARGE_SERVICE = "r1-chart-review", "r1-order-review", "r1-discharge-review"


@functools.cache
def registry() -> ServiceRegistry:
    """The shipped services with the clock fixed at NOW, so relative days and ages are reproducible."""
    services = []
    for service in shipped_registry():
        assert isinstance(service, RuleService)
        services.append(dataclasses.replace(service, clock=lambda: NOW))
    return ServiceRegistry(services)


@functools.cache
def entries_by_title() -> dict[str, KnowledgeEntry]:
    return {e.title: e for e in load_knowledge_base()}


def drafts_for(patient_id: str, *drugs: str) -> JsonDict:
    resources = [
        medication_request(f"draft-{drug}", patient_id, *DRUGS[drug], status="draft") for drug in drugs
    ]
    return draft_orders(*resources)


def call(
    service_id: str,
    hook: str,
    store: FhirStore,
    patient_id: str,
    drafts: JsonDict | None = None,
    extra_prefetch: Mapping[str, JsonDict] | None = None,
    **context_overrides: Any,
) -> tuple[wire.HookResponse, dict[str, Any]]:
    """One hook call built as an EHR would (fire helpers), answered by the service, rendered for the wire."""
    service = registry().get(service_id)
    context = fire.build_context(hook, store, patient_id, USER_ID, None, drafts)
    context.update(context_overrides)
    prefetch = fire.build_prefetch(service.declaration.prefetch, context, store, BASE_URL)
    for key, resource in (extra_prefetch or {}).items():
        add_entry(prefetch, key, resource)
    result = service.evaluate(HookCall(service_id, hook, str(uuid.uuid4()), context, prefetch))
    response = render.response(result)
    # The serialised response parses back under the same invariants and says the same.
    assert wire.HookResponse.model_validate_json(response.dump()) == response
    return response, context


def card_text(card: wire.Card) -> str:
    parts = [card.summary, card.detail or "", card.source.label]
    parts += [r.display for r in card.override_reasons or ()]
    parts += [link.label for link in card.links or ()]
    for suggestion in card.suggestions or ():
        parts.append(suggestion.label)
        parts += [a.description for a in suggestion.actions or ()]
    return "\n".join(parts)


def section(detail: str, title: str) -> list[str]:
    lines = detail.split("\n")
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def delete_targets(card: wire.Card) -> set[str | None]:
    return {a.resource_id for s in card.suggestions or () for a in s.actions or () if a.type == "delete"}


def check_card(card: wire.Card, patient_id: str, draft_refs: set[str]) -> None:
    assert len(card.summary) < 140 and "consider" in card.summary.lower(), card.summary
    assert card.indicator in INDICATORS
    assert card.source.topic is not None and card.source.topic.code.startswith("rule.")
    detail = card.detail or ""
    assert "**Patient data used**" in detail and "**Evidence**" in detail and "**Basis:**" in detail
    assert f"`{card.source.topic.code}`" in detail
    used = section(detail, "**Patient data used**")
    assert used and all(line.startswith("- ") and not BARE_HANDLE.match(line) for line in used), used
    evidence = [EVIDENCE_LINE.match(line) for line in section(detail, "**Evidence**")]
    assert evidence and all(evidence), detail
    for match in evidence:
        assert match is not None
        entry = entries_by_title()[match["title"]]
        assert match["url"] == entry.source.url and match["url"].startswith("https://")
    first = evidence[0]
    assert first is not None and card.source.url == first["url"]
    assert card.override_reasons and all(r.display.strip() for r in card.override_reasons)
    assert all(link.type == "absolute" and link.url.startswith("https://") for link in card.links or ())
    if card.suggestions:
        assert card.selection_behavior == "at-most-one"
    for suggestion in card.suggestions or ():
        assert suggestion.uuid and suggestion.actions
        for action in suggestion.actions:
            if action.type == "create":
                assert action.resource is not None
                request = ServiceRequest.model_validate(action.resource)
                assert request.subject.reference == f"Patient/{patient_id}"
            else:
                assert action.type == "delete" and action.resource_id in draft_refs, action


# --- every fixture chart, every shipped service --------------------------------------------------------


@pytest.mark.parametrize("name", chart_names())
def test_every_card_of_every_service_is_well_formed(name: str) -> None:
    bundle = raw_bundle(chart_path(name))
    store = FhirStore.from_bundles([bundle])
    patient_id = fire.pick_patient(store, None)
    drafts = drafts_for(patient_id, "ibuprofen", "naproxen")
    draft_refs = {"MedicationRequest/draft-ibuprofen", "MedicationRequest/draft-naproxen"}
    found = identifying(bundle)
    hooks = [(s.declaration.id, hook) for s in registry() for hook in s.declaration.hooks]
    assert len(hooks) == 5
    for service_id, hook in hooks:
        response, _ = call(service_id, hook, store, patient_id, drafts)
        for card in response.cards:
            check_card(card, patient_id, draft_refs)
            assert leaks(card_text(card), found) == [], (service_id, hook, card.summary)
            if service_id == ORDER_SERVICE:
                assert delete_targets(card), card.summary  # an order card is about a draft it can remove
            else:
                assert not delete_targets(card) and "draft order" not in (card.detail or "")
        if deceased(bundle):
            assert response.cards == [], (service_id, hook)  # no advice on a deceased patient's chart
        elif service_id == ORDER_SERVICE:
            # Two NSAID drafts are a duplicate for every living patient, so each order hook answers.
            topics = {c.source.topic.code for c in response.cards if c.source.topic}
            assert "rule.duplicate-therapy" in topics


def deceased(bundle: dict[str, Any]) -> bool:
    """Read from the raw bundle, independently of the context builder."""
    patients = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    return any(p.get("deceasedBoolean") or "deceasedDateTime" in p for p in patients)


# --- draft scoping ------------------------------------------------------------------------------------


@functools.cache
def _derek() -> tuple[FhirStore, str]:
    store = FhirStore.from_bundles([raw_bundle(chart_path("Derek_Becker"))])
    return store, fire.pick_patient(store, None)


def derek_order_call(
    hook: str, selections: list[str] | None = None
) -> tuple[wire.HookResponse, dict[str, set[str | None]]]:
    """Derek Becker (warfarin) with a recorded penicillin allergy, drafts of ibuprofen and amoxicillin."""
    store, patient_id = _derek()
    allergy = penicillin_allergy()
    allergy["patient"] = {"reference": f"Patient/{patient_id}"}
    overrides: dict[str, Any] = {} if selections is None else {"selections": selections}
    response, _ = call(
        ORDER_SERVICE,
        hook,
        store,
        patient_id,
        drafts_for(patient_id, "ibuprofen", "amoxicillin"),
        {"allergies": allergy},
        **overrides,
    )
    for card in response.cards:
        check_card(card, patient_id, {IBUPROFEN_REF, AMOXICILLIN_REF})
    by_rule: dict[str, set[str | None]] = {}
    for card in response.cards:
        assert card.source.topic is not None
        by_rule.setdefault(card.source.topic.code, set()).update(delete_targets(card))
    return response, by_rule


IBUPROFEN_REF = "MedicationRequest/draft-ibuprofen"
AMOXICILLIN_REF = "MedicationRequest/draft-amoxicillin"


def test_order_select_speaks_only_about_the_selected_draft() -> None:
    response, by_rule = derek_order_call("order-select", [AMOXICILLIN_REF])
    assert by_rule == {"rule.allergy-same-class": {AMOXICILLIN_REF}}
    assert [c.indicator for c in response.cards] == ["critical"]
    assert "ibuprofen" not in card_text(response.cards[0]).lower()

    response, by_rule = derek_order_call("order-select", [IBUPROFEN_REF])
    assert by_rule == {"rule.vka-nsaid": {IBUPROFEN_REF}, "rule.duplicate-therapy": {IBUPROFEN_REF}}
    assert all("amoxicillin" not in card_text(c).lower() for c in response.cards)


def test_order_sign_speaks_about_every_draft() -> None:
    response, by_rule = derek_order_call("order-sign")
    assert by_rule == {
        "rule.allergy-same-class": {AMOXICILLIN_REF},
        "rule.vka-nsaid": {IBUPROFEN_REF},
        "rule.duplicate-therapy": {IBUPROFEN_REF},
    }
    assert set().union(*by_rule.values()) == {IBUPROFEN_REF, AMOXICILLIN_REF}
    # Most severe first: the allergy conflict leads.
    assert response.cards[0].indicator == "critical"


@pytest.mark.parametrize(
    ("service_id", "hook"),
    [
        (CHART_SERVICE, "patient-view"),
        (CHART_SERVICE, "encounter-start"),
        (DISCHARGE_SERVICE, "encounter-discharge"),
    ],
)
def test_chart_and_discharge_review_never_speak_about_drafts(service_id: str, hook: str) -> None:
    """Even when a call carries draft orders, only the order service reads them."""
    store, patient_id = _derek()
    drafts = drafts_for(patient_id, "ibuprofen", "amoxicillin")
    plain, _ = call(service_id, hook, store, patient_id)
    with_drafts, _ = call(service_id, hook, store, patient_id, draftOrders=drafts)
    assert [c.summary for c in with_drafts.cards] == [c.summary for c in plain.cards]
    assert plain.cards, "Derek Becker's chart has rule cards"
    for card in with_drafts.cards:
        assert not delete_targets(card)
        assert "draft" not in card_text(card).lower()
        assert "ibuprofen" not in card_text(card).lower() and "amoxicillin" not in card_text(card).lower()


def test_a_rule_cards_uuid_is_stable_for_its_chart_so_feedback_can_be_joined() -> None:
    first, _ = derek_order_call("order-sign")
    again, _ = derek_order_call("order-sign")
    assert [c.uuid for c in first.cards] == [c.uuid for c in again.cards]
    assert len({c.uuid for c in first.cards}) == len(first.cards), "one uuid per card"
    # The card order-select shows for one draft is the card order-sign shows for it: one uuid.
    selected, _ = derek_order_call("order-select", [IBUPROFEN_REF])
    by_topic = {c.source.topic.code: c.uuid for c in first.cards if c.source.topic is not None}
    for card in selected.cards:
        assert card.source.topic is not None
        assert card.uuid == by_topic[card.source.topic.code]


def _call_with_prefetch(
    service_id: str, hook: str, prefetch_changes: Mapping[str, Any], issues: tuple[PrefetchIssue, ...]
) -> wire.HookResponse:
    store, patient_id = _derek()
    service = registry().get(service_id)
    drafts = drafts_for(patient_id, "ibuprofen") if hook.startswith("order") else None
    context = fire.build_context(hook, store, patient_id, USER_ID, None, drafts)
    prefetch = {
        **fire.build_prefetch(service.declaration.prefetch, context, store, BASE_URL),
        **prefetch_changes,
    }
    call = HookCall(service_id, hook, str(uuid.uuid4()), context, prefetch, prefetch_issues=issues)
    return render.response(service.evaluate(call))


def test_records_the_ehr_could_not_supply_are_named_on_a_card_not_read_as_none() -> None:
    """Fail closed: medications that were neither sent nor fetched are unknown, and the card says so."""
    unavailable = "rule.records-unavailable"
    fetched = _call_with_prefetch(CHART_SERVICE, "patient-view", {}, ())
    assert unavailable not in {c.source.topic.code for c in fetched.cards if c.source.topic}
    missing = (PrefetchIssue("medications", "incomplete", "not prefetched and no fhirServer"),)
    lost = _call_with_prefetch(CHART_SERVICE, "patient-view", {"medications": None}, missing)
    [card] = [c for c in lost.cards if c.source.topic and c.source.topic.code == unavailable]
    assert (
        card.summary
        == "Medication records could not be obtained from the EHR: safety checks may be incomplete"
    )
    assert card.indicator == "info"
    assert (
        card.links
        and card.links[0].url
        == entries_by_title()["Patient records that decision support cannot read"].source.url
    )
    # The warfarin interaction card the medications would have raised is gone, and the card says why.
    assert "rule.vka-nsaid" in {c.source.topic.code for c in fetched.cards if c.source.topic}
    assert "rule.vka-nsaid" not in {c.source.topic.code for c in lost.cards if c.source.topic}
    # An EHR that sent null had nothing to send: no card.
    nothing = _call_with_prefetch(CHART_SERVICE, "patient-view", {"medications": None}, ())
    assert unavailable not in {c.source.topic.code for c in nothing.cards if c.source.topic}
    # Two kinds are named; more are counted as "some records". Order hooks always say it too.
    both = (*missing, PrefetchIssue("allergies", "timeout", "fetch-back timed out"))
    two = _call_with_prefetch(ORDER_SERVICE, "order-sign", {"medications": None, "allergies": None}, both)
    assert any(
        c.summary.startswith("Allergy records and medication records could not be obtained")
        for c in two.cards
    )
