"""Each governance check on its own, including the defence-in-depth paths the schema already closes."""

from __future__ import annotations

import dataclasses

import pytest

from plugin.context.model import (
    ClinicalContext,
    Code,
    Dosage,
    DraftOrder,
    Encounter,
    Immunization,
    LabSeries,
    Measurement,
    Pregnancy,
    Procedure,
)
from plugin.governance import (
    GovernancePolicy,
    GovernancePolicyError,
    Reason,
    cluster_key,
    govern,
    steps,
    text,
)
from plugin.governance.steps import Chart
from plugin.rules.engine import check_proposal, evaluate
from plugin.suggestions import AiSuggestion, ProposedAction
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()


def _suggestion(
    summary: str = "Consider checking the INR", rationale: str = "", **kwargs: object
) -> AiSuggestion:
    document = corpus.suggestion(
        summary,
        rationale or "Warfarin needs regular INR monitoring and no recent INR result is on file.",
        kwargs.pop("proposed", corpus.inr_test()),  # type: ignore[arg-type]
        kwargs.pop("patient", ["M1"]),  # type: ignore[arg-type]
        kwargs.pop("knowledge_ids", ["kb.warfarin-inr-monitoring"]),  # type: ignore[arg-type]
    )
    return AiSuggestion.model_validate(document)


def _chart(context: ClinicalContext | None = None) -> Chart:
    return Chart.of(context or corpus.context(), corpus.knowledge(), corpus.RETRIEVED)


def _rich_context() -> ClinicalContext:
    """Every kind of fact, hand-made, including a lab outside the analyte catalog."""
    base = corpus.context()
    draft = DraftOrder(
        "D1",
        "MedicationRequest",
        Code("rxnorm", "313782", "Acetaminophen 325 MG Oral Tablet"),
        ("acetaminophen",),
        "325 MG",
        Dosage(),
        "draft",
        "proposal",
    )
    service = DraftOrder(
        "D2", "ServiceRequest", Code("loinc", "6301-6", "INR"), (), None, Dosage(), "draft", "order"
    )
    custom = LabSeries("custom", "Custom", (Measurement("O7", "custom", 3.0, "U", 2),), None)
    return dataclasses.replace(
        base,
        labs=(*base.labs, custom),
        encounters=(Encounter("E1", "ambulatory", None, 3),),
        immunizations=(Immunization("I1", Code("cvx", "140", "Influenza"), 30),),
        procedures=(Procedure("P1", Code("snomed", "73761001", "Colonoscopy"), 400),),
        draft_orders=(draft, service),
        pregnancy=Pregnancy("not-pregnant", ("O8",)),
    )


def test_policy_rejects_impossible_settings() -> None:
    for bad in (
        {"min_agreement": 0.0},
        {"min_agreement": 1.5},
        {"max_summary": 0},
        {"min_shared_terms": 0},
        {"injection_run_words": 1},
        {"number_tolerance": -0.1},
    ):
        with pytest.raises(GovernancePolicyError):
            GovernancePolicy(**bad)  # type: ignore[arg-type]


def test_chart_indexes_every_fact_kind() -> None:
    chart = _chart(_rich_context())
    for handle in ("E1", "I1", "P1", "D1", "D2", "O7", "O8", "N1"):
        assert handle in chart.facts
    assert chart.facts["N1"] == ()  # untrusted text is citable but never evidence
    assert chart.order_types == {"M1": "MedicationRequest", "D1": "MedicationRequest", "D2": "ServiceRequest"}


def test_update_is_checked_without_its_target_and_memoised() -> None:
    chart = _chart()
    update = ProposedAction.model_validate(
        corpus.action(
            "update", "MedicationRequest", "rxnorm", "855332", "Warfarin Sodium 5 MG Oral Tablet", "M1"
        )
    )
    replaced = chart.veto(update)
    assert chart.veto(update) is replaced
    # Replacing M1 is no duplicate of M1; the missing INR still vetoes any warfarin order on this chart.
    assert [f.rule_id for f in replaced] == ["rule.inr-monitoring"]
    create = ProposedAction.model_validate(corpus.medication("855332", "Warfarin Sodium 5 MG Oral Tablet"))
    assert "rule.duplicate-therapy" in {f.rule_id for f in chart.veto(create)}


def test_chart_runs_agree_with_the_engine() -> None:
    chart = _chart()
    assert chart.findings() == evaluate(chart.context)
    for target in (None, "M1"):
        create = ProposedAction.model_validate(
            corpus.action(
                "update" if target else "create",
                "MedicationRequest",
                "rxnorm",
                "855332",
                "Warfarin Sodium 5 MG Oral Tablet",
                target,
            )
        )
        without = dataclasses.replace(
            chart.context, medications=tuple(m for m in chart.context.medications if m.handle != target)
        )
        code = Code("rxnorm", "855332", "Warfarin Sodium 5 MG Oral Tablet")
        assert chart.veto(create) == check_proposal(without, code)


def test_untrusted_text_screens() -> None:
    chart = _chart()
    phrase = _suggestion(rationale="Per the system prompt, INR monitoring on warfarin applies.")
    assert steps.check_untrusted(phrase, chart, POLICY).reason is Reason.INJECTION_ECHO
    own_code = _suggestion(rationale="Warfarin 855332 needs INR monitoring.")
    assert steps.check_untrusted(own_code, chart, POLICY).passed
    mrn = _suggestion(rationale="Warfarin needs INR monitoring for MRN 12345678.")
    assert steps.check_untrusted(mrn, chart, POLICY).detail == "looks like an identifier: MRN-like digit run"
    advice = _suggestion(rationale="Warfarin needs INR monitoring 123456.", proposed=corpus.action())
    assert steps.check_untrusted(advice, chart, POLICY).reason is Reason.IDENTIFIER_ECHO


def test_language_checks() -> None:
    declared = steps.check_language(_suggestion(), "fr-CA", POLICY)
    assert declared.reason is Reason.WRONG_LANGUAGE
    short = steps.check_language(_suggestion("Consider INR", "INR, warfarin."), "en-US", POLICY)
    assert short.passed
    assert short.detail.endswith("undetermined")


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("Hold the warfarin tonight", "hold the"),
        ("Do not give ibuprofen", "do not"),
        ("Warfarin must be reviewed", "must"),
    ],
)
def test_directives(sample: str, expected: str) -> None:
    verdict = steps.check_phrasing(_suggestion(sample), POLICY)
    assert verdict.reason is Reason.DIRECTIVE_PHRASING
    assert repr(expected) in verdict.detail


def test_summary_too_long_is_caught_even_past_the_schema() -> None:
    long = _suggestion().model_copy(update={"summary": "Consider " + "x" * 140})
    assert steps.check_phrasing(long, POLICY).reason is Reason.SUMMARY_TOO_LONG


def test_support_checks() -> None:
    chart = _chart()
    unrelated = _suggestion(
        "Consider dapagliflozin", "Dapagliflozin helps heart failure.", proposed=corpus.action()
    )
    assert steps.check_support(unrelated, chart, POLICY).reason is Reason.UNSUPPORTED_CLAIM
    wrong_code = _suggestion(
        proposed=corpus.action("create", "ServiceRequest", "loinc", "2823-3", "Potassium"),
    )
    # Word overlap lets it through support; no cited passage asserts ordering potassium, so basis refuses.
    assert steps.check_support(wrong_code, chart, POLICY).passed
    verdict = steps.check_basis(wrong_code, chart)
    assert verdict.reason is Reason.UNSUPPORTED_CLAIM
    assert verdict.detail == "no cited passage asserts order-test of 'Potassium' under the cited facts"


@pytest.mark.parametrize(
    ("rationale", "passes"),
    [
        ("eGFR is 25 mL/min/1.73m2, so metformin must stay below thresholds of eGFR.", True),
        ("Kidney function: eGFR below 30 means metformin must not be used; eGFR 25.", True),
        ("Metformin and eGFR: a value of 24.9 % was seen.", True),
        ("Metformin and eGFR thresholds apply; recheck kidney function in 2 weeks.", True),
        ("Metformin and eGFR thresholds: potassium 4.1 is irrelevant here.", False),
        ("Metformin and eGFR: 3 readings, all 12 mmol/L.", False),
    ],
)
def test_number_rule(rationale: str, passes: bool) -> None:
    suggestion = _suggestion(
        "Consider reviewing metformin",
        rationale,
        proposed=corpus.action(),
        patient=["O1"],
        knowledge_ids=["kb.metformin-egfr-thresholds"],
    )
    verdict = steps.check_support(suggestion, _chart(), POLICY)
    assert verdict.passed is passes
    if not passes:
        assert verdict.reason is Reason.NUMBER_MISMATCH


def test_actions_checks() -> None:
    chart = _chart(_rich_context())
    only_none = GovernancePolicy(allowed_action_types=frozenset({"none"}))
    assert steps.check_actions(_suggestion(), chart, only_none, None)[0].reason is Reason.ACTION_NOT_ALLOWED
    no_services = GovernancePolicy(allowed_resource_types=frozenset({"MedicationRequest"}))
    assert steps.check_actions(_suggestion(), chart, no_services, None)[0].reason is Reason.ACTION_NOT_ALLOWED
    unknown = _suggestion(proposed=corpus.action("delete", "ServiceRequest", target="D9"))
    assert steps.check_actions(unknown, chart, POLICY, None)[0].detail.startswith("target D9 is not an order")
    mismatch = _suggestion(proposed=corpus.action("delete", "ServiceRequest", target="D1"))
    assert "is a MedicationRequest" in steps.check_actions(mismatch, chart, POLICY, None)[0].detail
    withdraw = _suggestion(proposed=corpus.action("delete", "ServiceRequest", target="D2"))
    assert steps.check_actions(withdraw, chart, POLICY, None) == (steps.Verdict(None, "delete of D2"), None)
    verdict, resource = steps.check_actions(_suggestion(), chart, POLICY, None)
    assert verdict.passed
    assert resource is not None
    assert resource["subject"] == {"display": "Patient"}
    invalid = steps.check_actions(_suggestion(), chart, POLICY, "")
    assert invalid[0].reason is Reason.INVALID_RESOURCE
    medication = _suggestion(proposed=corpus.medication("313782", "Acetaminophen 325 MG Oral Tablet"))
    _, drug = steps.check_actions(medication, chart, POLICY, "Patient/1")
    assert drug is not None
    assert drug["medicationCodeableConcept"]["coding"][0]["code"] == "313782"


def test_invalid_resource_is_logged_by_govern() -> None:
    sample = corpus.parsed(corpus.answer(corpus.clean_inr()))
    decision = govern([sample], corpus.context(), corpus.RETRIEVED, corpus.knowledge(), POLICY, "")
    assert [r.reason for r in decision.rejected] == [Reason.INVALID_RESOURCE]
    assert decision.log[-1].step == "actions"


def test_info_severity_without_a_backing_rule() -> None:
    advice = corpus.suggestion(
        "Consider reviewing warfarin INR monitoring",
        "Warfarin needs regular INR monitoring.",
        corpus.action(),
        ["C1"],
    )
    sample = corpus.parsed(corpus.answer(advice))
    decision = govern([sample], corpus.context(), corpus.RETRIEVED, corpus.knowledge(), POLICY)
    assert decision.accepted[0].severity == "info"
    assert decision.accepted[0].backing_rules == ()
    assert cluster_key(decision.accepted[0].suggestion)[0] == "advice"


def test_text_helpers() -> None:
    assert text.find_url("cite kb.nsaid-ckd and kb.co-trimoxazole") is None
    assert text.find_url("see dailymed.nlm.nih.gov") == "dailymed.nlm.nih.gov"
    assert text.copied_run(["a", "b"], ["a", "b", "c"], 3) is False
    assert {"nsaid", "ibuprofen", "anti"} <= text.key_terms(["Ibuprofen and other NSAIDs, x 2.5"]) | {"anti"}
    assert "2.5" in text.key_terms(["2.5 x"])
    assert text.find_identifier("write to a.b@example.org", frozenset()) == "e-mail"
