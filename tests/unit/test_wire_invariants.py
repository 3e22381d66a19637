"""The spec's card invariants are enforced by the wire models, and absent members never reach the wire."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cds_hooks import render
from cds_hooks.protocol import Action, Card, FeedbackRequest, HookRequest, HookResponse, Link
from plugin.cards import Card as CoreCard
from plugin.cards import Coding, ServiceResult, Source, Suggestion

pytestmark = pytest.mark.unit

SOURCE = {"label": "R1 CDS"}


def card(**members: Any) -> dict[str, Any]:
    return {"summary": "Consider a lower dose", "indicator": "warning", "source": SOURCE, **members}


def test_summary_must_be_under_140_characters() -> None:
    Card.model_validate(card(summary="x" * 139))
    with pytest.raises(ValidationError, match="summary"):
        Card.model_validate(card(summary="x" * 140))
    with pytest.raises(ValidationError, match="summary"):
        Card.model_validate(card(summary=""))


def test_suggestions_require_selection_behavior() -> None:
    with pytest.raises(ValidationError, match="selectionBehavior is required"):
        Card.model_validate(card(suggestions=[{"label": "Stop it"}]))
    Card.model_validate(card(suggestions=[{"label": "Stop it"}], selectionBehavior="any"))


def test_at_most_one_allows_one_recommendation() -> None:
    two = [{"label": "A", "isRecommended": True}, {"label": "B", "isRecommended": True}]
    with pytest.raises(ValidationError, match="at most one recommended"):
        Card.model_validate(card(suggestions=two, selectionBehavior="at-most-one"))
    Card.model_validate(card(suggestions=two, selectionBehavior="any"))


def test_override_reasons_need_display() -> None:
    with pytest.raises(ValidationError, match="display"):
        Card.model_validate(card(overrideReasons=[{"code": "x", "system": "s"}]))


def test_actions_need_description_and_a_target() -> None:
    with pytest.raises(ValidationError, match="description"):
        Action.model_validate({"type": "create", "resource": {"resourceType": "Task"}})
    with pytest.raises(ValidationError, match="needs a resource"):
        Action.model_validate({"type": "update", "description": "d"})
    with pytest.raises(ValidationError, match="resourceId"):
        Action.model_validate({"type": "delete", "description": "d"})
    with pytest.raises(ValidationError, match="type"):
        Action.model_validate({"type": "replace", "description": "d", "resource": {}})


def test_app_context_only_on_smart_links() -> None:
    with pytest.raises(ValidationError, match="appContext"):
        Link.model_validate({"label": "l", "url": "https://x", "type": "absolute", "appContext": "a"})


def test_cards_member_is_always_present() -> None:
    assert HookResponse(cards=[]).dump() == b'{"cards":[]}'
    assert render.response(ServiceResult()).dump() == b'{"cards":[]}'
    with pytest.raises(ValidationError, match="cards"):
        HookResponse.model_validate({})


def test_core_card_maps_with_absent_members_omitted() -> None:
    core = CoreCard(
        summary="Consider metformin dose review",
        indicator="info",
        source=Source(label="R1 CDS rules", topic=Coding(code="renal")),
        suggestions=(Suggestion(label="Review dose"),),
        selection_behavior="any",
    )
    wire = render.response(ServiceResult(cards=(core,))).dump()
    assert b"null" not in wire and b"[]" not in wire
    out = HookResponse.model_validate_json(wire).cards[0]
    assert out.source.topic is not None and out.source.topic.code == "renal"
    assert out.uuid and out.suggestions and out.suggestions[0].uuid


def test_core_card_breaking_an_invariant_cannot_be_rendered() -> None:
    core = CoreCard(summary="x" * 200, indicator="info", source=Source(label="R1"))
    with pytest.raises(ValidationError):
        render.card(core)


REQUEST = {
    "hook": "patient-view",
    "hookInstance": "h",
    "context": {"userId": "Practitioner/1", "patientId": "p1"},
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"context": {"userId": "Practitioner/1", "patientId": "Patient/p1"}}, "patientId"),
        ({"context": {"userId": "doctor-1", "patientId": "p1"}}, "userId"),
        ({"context": {"userId": "Device/1", "patientId": "p1"}}, "userId"),
        ({"context": {"patientId": "p1"}}, "userId is required"),
        ({"fhirServer": "ftp://ehr/fhir"}, "fhirServer"),
        (
            {
                "fhirAuthorization": {
                    "access_token": "t",
                    "token_type": "Bearer",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "c",
                }
            },
            "requires fhirServer",
        ),
        ({"prefetch": {"patient": "Patient/1"}}, "prefetch"),
        ({"hookInstance": ""}, "hookInstance"),
    ],
)
def test_request_rules(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        HookRequest.model_validate({**REQUEST, **change})


def test_requests_are_read_tolerantly() -> None:
    parsed = HookRequest.model_validate(
        {
            **REQUEST,
            "fhirServer": "https://ehr.example.org/fhir/",
            "fhirAuthorization": {
                "access_token": "secret-token",
                "token_type": "bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "app",
            },
            "unknownMember": {"ignored": True},
            "hook": "com.example.custom-hook",
            "context": {"anything": ["goes"]},
        }
    )
    assert parsed.fhir_server == "https://ehr.example.org/fhir"
    assert parsed.fhir_authorization is not None and parsed.fhir_authorization.token_type == "Bearer"
    assert "secret-token" not in repr(parsed)


def test_feedback_accepts_single_object_and_refuses_contradictions() -> None:
    item = {
        "card": "c",
        "outcome": "accepted",
        "outcomeTimestamp": "2021-01-01T00:00:00Z",
        "acceptedSuggestions": [{"id": "s"}],
    }
    assert FeedbackRequest.model_validate(item).feedback[0].card == "c"
    with pytest.raises(ValidationError, match="no accepted suggestions"):
        FeedbackRequest.model_validate({**item, "outcome": "overridden"})
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate({"feedback": []})
