"""AI cards: CDS Hooks-valid, info or warning only, the basis shown, stable uuids, applicable actions."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_hooks import render
from cds_hooks.protocol import Card, HookResponse
from inference.parsing import parse_sample
from plugin.ai_cards import ai_card, ai_cards
from plugin.cards import ServiceResult
from plugin.governance import Decision, GovernancePolicy, GovernedSuggestion, govern
from plugin.governance.steps import build_resource
from plugin.model_port import Sample
from plugin.rules.cards import OVERRIDE_REASONS, describe
from plugin.suggestions import AiSuggestion
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

SERVICE = "r1-chart-review"
MODEL = "DeepSeek-R1-Distill-Qwen-32B"
RETRIEVED = corpus.RETRIEVED | {"kb.metformin-sick-day-rules"}


def decide(*suggestions: dict[str, Any], n: int = 1) -> Decision:
    sample = parse_sample(Sample(json.dumps(corpus.answer(*suggestions)), None, "stop"))
    return govern(
        [sample] * n, corpus.context(), RETRIEVED, corpus.knowledge(), GovernancePolicy(), corpus.PATIENT
    )


def cards_for(decision: Decision, patient: str | None = corpus.PATIENT) -> HookResponse:
    built = corpus.built()
    cards = ai_cards(
        decision.accepted, SERVICE, built.context, built.handles, corpus.knowledge(), MODEL, patient
    )
    wire = render.response(ServiceResult(cards=cards))
    return HookResponse.model_validate_json(wire.dump())  # the bytes an EHR receives parse back


def test_card_shows_its_basis_and_is_valid_cds_hooks() -> None:
    [card] = cards_for(decide(corpus.clean_inr(), n=3)).cards
    entry = corpus.knowledge().get("kb.warfarin-inr-monitoring")
    assert entry is not None
    assert card.indicator in ("info", "warning")
    assert len(card.summary) < 140
    detail = card.detail or ""
    for section in ("**Patient data used**", "**Evidence**", "**Rationale**", "**Confidence:**"):
        assert section in detail
    assert "3 of 3" in detail
    assert describe(corpus.context())[corpus.handle_of("MedicationRequest/warfarin")] in detail
    assert f"1. [{entry.title}]({entry.source.url})" in detail
    assert entry.source.organisation in detail and entry.source.version in detail
    assert "not a substitute for clinical judgement" in detail and MODEL in detail
    assert MODEL in card.source.label and "R1 CDS AI review" in card.source.label
    assert [link.url for link in card.links or []] == [entry.source.url]
    assert [r.code for r in card.override_reasons or []] == [r.code for r in OVERRIDE_REASONS]


def test_create_action_carries_the_validated_resource() -> None:
    [card] = cards_for(decide(corpus.clean_inr())).cards
    [suggestion] = card.suggestions or []
    [action] = suggestion.actions or []
    assert action.type == "create"
    assert action.resource is not None
    ServiceRequest.model_validate(action.resource)
    assert action.resource["subject"] == {"reference": corpus.PATIENT}
    assert card.selection_behavior == "at-most-one"


def test_patient_is_bound_when_governance_had_no_reference() -> None:
    sample = parse_sample(Sample(json.dumps(corpus.answer(corpus.clean_inr())), None, "stop"))
    decision = govern([sample], corpus.context(), RETRIEVED, corpus.knowledge(), GovernancePolicy(), None)
    [card] = cards_for(decision, patient="Patient/bound").cards
    [action] = (card.suggestions or [])[0].actions or []
    assert action.resource is not None and action.resource["subject"] == {"reference": "Patient/bound"}


def governed_action(kind: str, target: str, reference: str | None = corpus.PATIENT) -> GovernedSuggestion:
    """A governed suggestion with an update or delete action, built as governance builds it."""
    code = None if kind == "delete" else ("rxnorm", "855332", "Warfarin Sodium 5 MG Oral Tablet")
    proposed = corpus.action(kind, "MedicationRequest", *(code or (None, None, None)), target)
    suggestion = AiSuggestion.model_validate(
        corpus.suggestion(
            "Consider reviewing the warfarin order", "INR monitoring applies.", proposed, [target]
        )
    )
    [accepted] = decide(corpus.clean_inr()).accepted
    return replace(
        accepted,
        suggestion=suggestion,
        patient_handles=(target,),
        resource=build_resource(suggestion.action, reference),
    )


def card_of(governed: GovernedSuggestion) -> Card:
    built = corpus.built()
    core = ai_card(governed, SERVICE, built.context, built.handles, corpus.knowledge(), MODEL, corpus.PATIENT)
    return render.response(ServiceResult(cards=(core,))).cards[0]


def test_update_targets_the_literal_reference() -> None:
    card = card_of(governed_action("update", corpus.handle_of("MedicationRequest/warfarin")))
    [action] = (card.suggestions or [])[0].actions or []
    assert action.type == "update"
    assert action.resource_id == "MedicationRequest/warfarin"
    assert action.resource is not None and action.resource["id"] == "warfarin"
    MedicationRequest.model_validate(action.resource)


def test_delete_names_the_draft_and_unresolvable_targets_get_no_action() -> None:
    built = corpus.built()
    built.handles.references["D1"] = "MedicationRequest/draft-1"
    built.handles.references["D2"] = "urn:uuid:0b6a3c1e-1111-4a4a-8888-123456789abc"
    try:
        card = card_of(governed_action("delete", "D1"))
        [action] = (card.suggestions or [])[0].actions or []
        assert (action.type, action.resource_id, action.resource) == (
            "delete",
            "MedicationRequest/draft-1",
            None,
        )
        assert card_of(governed_action("delete", "D2")).suggestions is None  # not a literal Type/id
        assert card_of(governed_action("delete", "D9")).suggestions is None  # not in the map at all
    finally:
        del built.handles.references["D1"], built.handles.references["D2"]


def test_advice_has_no_action_and_never_critical() -> None:
    advice = corpus.suggestion(
        "Consider reviewing INR monitoring on warfarin",
        "Warfarin needs regular INR monitoring and no recent INR result is on file.",
        corpus.action(),
        [corpus.handle_of("MedicationRequest/warfarin")],
    )
    decision = decide(advice)
    [card] = cards_for(decision).cards
    assert card.suggestions is None
    assert card.indicator != "critical"


def test_uuid_is_stable_for_the_same_input_and_differs_per_service() -> None:
    decision = decide(corpus.clean_inr())
    [governed] = decision.accepted
    built = corpus.built()

    def uuid_of(g: GovernedSuggestion, service_id: str = SERVICE) -> str | None:
        return ai_card(
            g, service_id, built.context, built.handles, corpus.knowledge(), MODEL, corpus.PATIENT
        ).uuid

    assert uuid_of(governed) == uuid_of(decide(corpus.clean_inr()).accepted[0])
    assert uuid_of(governed) != uuid_of(governed, "r1-order-review")
    [wire] = cards_for(decision).cards
    assert wire.uuid == uuid_of(governed)
