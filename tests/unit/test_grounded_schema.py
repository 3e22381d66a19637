"""grounded_json_schema: the schema held to one review admits valid answers for it and refuses what the validators refuse."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import jsonschema_rs
import pytest

from plugin.suggestions import (
    MAX_CITATION_LISTS,
    MAX_RATIONALE,
    MAX_SUGGESTIONS,
    SuggestionSet,
    grounded_json_schema,
)

pytestmark = pytest.mark.unit

HANDLES = ["M1", "M2", "O1", "C1", "C2", "D1"]
PASSAGES = ["kb.warfarin-nsaid-bleeding", "kb.af-doac-preferred"]


def validator(**limits: Any) -> Any:
    return jsonschema_rs.validator_for(grounded_json_schema(HANDLES, PASSAGES, "en", **limits))


def act(
    intent: str,
    kind: str,
    resource: str | None,
    code: dict[str, str] | None,
    target: str | None,
    dose: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "intent": intent,
        "type": kind,
        "resource_type": resource,
        "code": code,
        "target": target,
        "dose": dose,
    }


def suggestion(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "summary": "Consider an analgesic other than naproxen",
        "rationale": "Naproxen with warfarin raises the bleeding risk.",
        "action": act("counsel", "none", None, None, None),
        "citations": {"patient": ["M1", "M2"], "knowledge": ["kb.warfarin-nsaid-bleeding"]},
        "confidence": "high",
    }
    base.update(changes)
    return base


def answer(*suggestions: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "language": "en",
        "abstain": False,
        "abstain_reason": None,
        "suggestions": list(suggestions),
        **changes,
    }


def both_agree(document: dict[str, Any], **limits: Any) -> bool:
    """The grammar's verdict; where it admits a document, the pydantic validators must admit it too."""
    admitted = bool(validator(**limits).is_valid(document))
    if admitted:
        SuggestionSet.model_validate_json(json.dumps(document))
    return admitted


ORDER = {"system": "rxnorm", "code": "161", "display": "Acetaminophen"}
LAB = {"system": "loinc", "code": "6301-6", "display": "INR"}


DOSE = {"amount": 500, "unit": "mg", "route": "oral", "frequency": 2, "period": "d"}
MR, SR = "MedicationRequest", "ServiceRequest"
REFERRAL = {"system": "snomed", "code": "306206005", "display": "Referral to service"}


def _id(action: dict[str, Any]) -> str:
    return f"{action['intent']}-{action['type']}-{action['resource_type']}-{action['target']}"


@pytest.mark.parametrize(
    "action",
    [
        act("counsel", "none", None, None, None),
        act("no-change", "none", None, None, None),
        act("start", "create", MR, ORDER, None),
        act("start", "create", MR, ORDER, None, DOSE),
        act("order-test", "create", SR, LAB, None),
        act("refer", "create", SR, REFERRAL, None),
        act("substitute", "update", MR, ORDER, "M1"),
        act("substitute", "update", MR, ORDER, "D1", DOSE),
        act("change-dose", "update", MR, ORDER, "M1", DOSE),
        act("stop", "update", MR, None, "M1"),
        act("stop", "delete", MR, None, "D1"),
        act("stop", "delete", SR, None, "D1"),
    ],
    ids=_id,
)
def test_valid_answers_are_admitted(action: dict[str, Any]) -> None:
    assert both_agree(answer(suggestion(action=action)))


@pytest.mark.parametrize(
    "action",
    [
        act("counsel", "none", MR, None, None),
        act("start", "create", MR, LAB, None),  # loinc drug
        act("order-test", "create", SR, {**LAB, "code": "63016"}, None),
        act("start", "create", MR, ORDER, "M1"),
        act("substitute", "update", MR, ORDER, "M9"),  # not here
        act("order-test", "update", SR, LAB, "M1"),
        act("stop", "delete", MR, None, "M1"),
        act("substitute", "update", MR, None, "M1"),
        act("stop", "update", MR, ORDER, "M1"),
        act("change-dose", "update", MR, ORDER, "M1"),  # no dose
        act("counsel", "create", MR, ORDER, None),
        act("start", "none", None, None, None),
        act("refer", "create", SR, LAB, None),  # a referral is a procedure
        act("order-test", "create", SR, LAB, None, DOSE),
        act("stop", "update", MR, None, "M1", DOSE),
        act("start", "create", MR, ORDER, None, {**DOSE, "unit": "grains"}),
    ],
    ids=_id,
)
def test_actions_the_validators_refuse_are_refused(action: dict[str, Any]) -> None:
    assert not both_agree(answer(suggestion(action=action)))


def test_citations_come_from_this_review_only() -> None:
    assert not both_agree(answer(suggestion(citations={"patient": ["M7"], "knowledge": PASSAGES[:1]})))
    assert not both_agree(answer(suggestion(citations={"patient": ["M1"], "knowledge": ["kb.not-given"]})))
    assert not both_agree(answer(suggestion(citations={"patient": ["M1"], "knowledge": []})))


def test_abstaining_and_answering_are_two_shapes() -> None:
    reason = "Nothing in the passages covers this chart."
    assert both_agree(answer(abstain=True, abstain_reason=reason))
    assert both_agree(answer())  # reviewed, nothing to add
    assert not both_agree(answer(suggestion(), abstain=True, abstain_reason=reason))
    assert not both_agree(answer(abstain=True))  # no reason
    assert not both_agree(answer(suggestion(), abstain_reason=reason))
    assert not both_agree(answer(language="fr"))


def test_without_passages_only_an_abstention_or_an_empty_answer_fits() -> None:
    schema = jsonschema_rs.validator_for(grounded_json_schema(HANDLES, [], "en"))
    assert schema.is_valid(answer()) and not schema.is_valid(answer(suggestion()))


def test_limits_hold_at_below_and_above_their_boundary() -> None:
    two = validator(max_suggestions=2, max_rationale=60)
    assert two.is_valid(answer(suggestion(), suggestion()))
    assert not two.is_valid(answer(suggestion(), suggestion(), suggestion()))
    assert two.is_valid(answer(suggestion(rationale="x" * 60)))
    assert not two.is_valid(answer(suggestion(rationale="x" * 61)))
    grounded_json_schema(
        HANDLES, PASSAGES, "en", max_suggestions=MAX_SUGGESTIONS, max_rationale=MAX_RATIONALE
    )
    grounded_json_schema(HANDLES, PASSAGES, "en", max_suggestions=1, max_rationale=1)
    for loosened in ({"max_suggestions": MAX_SUGGESTIONS + 1}, {"max_rationale": MAX_RATIONALE + 1}):
        with pytest.raises(ValueError, match="only tighten"):
            grounded_json_schema(HANDLES, PASSAGES, "en", **loosened)
    with pytest.raises(ValueError, match="only tighten"):
        grounded_json_schema(HANDLES, PASSAGES, "en", max_suggestions=0)


def test_enumerated_citations_refuse_repeats_the_grammar_could_not_otherwise() -> None:
    plain = validator()
    listed = validator(max_citations=3)
    repeated = answer(suggestion(citations={"patient": ["M1", "M1"], "knowledge": PASSAGES[:1]}))
    assert plain.is_valid(repeated)  # a plain array schema admits it; the pydantic validator would not
    assert not listed.is_valid(repeated)
    for patient in ([], ["M1"], ["M1", "C1", "D1"]):
        assert both_agree(
            answer(suggestion(citations={"patient": patient, "knowledge": PASSAGES})), max_citations=3
        )
    too_many = answer(suggestion(citations={"patient": ["M1", "M2", "O1", "C1"], "knowledge": PASSAGES[:1]}))
    assert not listed.is_valid(too_many)
    out_of_order = answer(suggestion(citations={"patient": ["M2", "M1"], "knowledge": PASSAGES[:1]}))
    assert not listed.is_valid(out_of_order)  # one spelling per set: the summary's order


def count_lists(n: int, most: int) -> int:
    return sum(math.comb(n, k) for k in range(most + 1))


def test_the_number_of_enumerated_lists_is_capped_by_lowering_the_limit() -> None:
    many = [f"O{i}" for i in range(1, 41)]  # 40 handles: lists of up to 3 would be 10,701; of up to 2, 821
    assert count_lists(40, 3) > MAX_CITATION_LISTS >= count_lists(40, 2)
    schema = grounded_json_schema(many, PASSAGES, "en", max_citations=3)
    patient = schema["anyOf"][0]["properties"]["suggestions"]["items"]["properties"]["citations"]
    lists = patient["properties"]["patient"]["enum"]
    assert len(lists) == count_lists(40, 2) and max(len(x) for x in lists) == 2
    # At the boundary: 17 handles give 1 + 17 + 136 + 680 = 834 lists of up to 3, all kept.
    seventeen = copy.copy(many[:17])
    kept = grounded_json_schema(seventeen, PASSAGES, "en", max_citations=3)["anyOf"][0]
    kept_lists = kept["properties"]["suggestions"]["items"]["properties"]["citations"]["properties"][
        "patient"
    ]
    assert len(kept_lists["enum"]) == count_lists(17, 3) <= MAX_CITATION_LISTS
