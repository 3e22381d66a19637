"""The basis step (issue 18, item 3): a regimen change or test order is supported only by a cited assertion of
its own intent and target, with lab conditions on cited values and a dose change's direction."""

from __future__ import annotations

import dataclasses

import pytest

from plugin.context.model import ClinicalContext, Dosage
from plugin.governance import GovernancePolicy, Reason, govern, steps
from plugin.knowledge import Assertion, KnowledgeBase
from plugin.suggestions import AiSuggestion
from tests.support import governance_corpus as corpus
from tests.unit.test_governance_intents import METFORMIN_ER, RETRIEVED, chart, drug, med

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()
METFORMIN_500 = ("861007", "Metformin hydrochloride 500 MG Oral Tablet")


def _handle(context_refs: dict[str, str], reference: str) -> str:
    return next(h for h, ref in context_refs.items() if ref == reference)


def _suggest(action: corpus.JsonDict, patient: list[str], knowledge: tuple[str, ...]) -> AiSuggestion:
    return AiSuggestion.model_validate(
        corpus.suggestion(
            "Consider changing metformin",
            "Metformin and eGFR thresholds: kidney function guides the metformin dose.",
            action,
            patient,
            knowledge,
        )
    )


def _dosed(context: ClinicalContext, handle: str, dose: str, frequency: str) -> ClinicalContext:
    """The chart with its medication `handle` given a structured dosage (the corpus charts carry none)."""
    medications = tuple(
        dataclasses.replace(m, dosage=Dosage(dose=dose, route=None, frequency=frequency))
        if m.handle == handle
        else m
        for m in context.medications
    )
    return dataclasses.replace(context, medications=medications)


def _chart(context: ClinicalContext, knowledge: KnowledgeBase | None = None) -> steps.Chart:
    return steps.Chart(context, knowledge or corpus.knowledge(), RETRIEVED)


def _with_assertion(entry_id: str, assertion: Assertion) -> KnowledgeBase:
    base = corpus.knowledge()
    entry = base.get(entry_id)
    assert entry is not None
    changed = dataclasses.replace(entry, assertions=(*entry.assertions, assertion))
    return dataclasses.replace(base, entries={**base.entries, entry_id: changed})


# --- lab conditions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("egfr", "cite_egfr", "supported"),
    [
        (24, True, True),
        (29.9, True, True),
        (30, True, False),  # the bound is "below 30"
        (24, False, False),  # the value must be among the cited facts
    ],
)
def test_a_stop_on_a_lab_threshold_needs_the_cited_value_across_it(
    egfr: float, cite_egfr: bool, supported: bool
) -> None:
    built = chart([METFORMIN_ER], [], egfr=egfr, creatinine=2.6)
    target = med(built, METFORMIN_ER)
    cited = [target, *([_handle(built.handles.references, "Observation/egfr")] if cite_egfr else [])]
    suggestion = _suggest(drug("stop", "update", target), cited, ("kb.metformin-egfr-thresholds",))
    verdict = steps.check_basis(suggestion, _chart(built.context))
    assert verdict.passed is supported
    if supported:
        assert verdict.detail == "kb.metformin-egfr-thresholds supports stop of metformin when egfr < 30"
    else:
        assert verdict.reason is Reason.UNSUPPORTED_CLAIM


def test_with_no_current_value_a_lab_condition_cannot_support() -> None:
    built = chart([METFORMIN_ER], [], egfr=24, creatinine=2.6)
    target = med(built, METFORMIN_ER)
    without_labs = dataclasses.replace(built.context, labs=())
    suggestion = _suggest(drug("stop", "update", target), [target], ("kb.metformin-egfr-thresholds",))
    assert steps.check_basis(suggestion, _chart(without_labs)).reason is Reason.UNSUPPORTED_CLAIM


def test_an_opposing_lab_condition_holds_on_an_unknown_value_and_not_on_a_known_good_one() -> None:
    opposing = Assertion("opposes", "stop", ("metformin",), labs=(("potassium", "at_or_above", 6.0),))
    knowledge = _with_assertion("kb.metformin-egfr-thresholds", opposing)
    built = chart([METFORMIN_ER], [], egfr=24, creatinine=2.6)
    target = med(built, METFORMIN_ER)
    suggestion = _suggest(drug("stop", "update", target), [target], ("kb.metformin-egfr-thresholds",))
    # No potassium on this chart: unknown, so the opposing assertion holds (fail closed).
    verdict = steps.check_support(suggestion, _chart(built.context, knowledge), POLICY)
    assert verdict.reason is Reason.CONTRADICTED_BY_CITATION and "potassium >= 6" in verdict.detail
    # eGFR 24 is known and not at or above 60: an opposing assertion on it does not hold.
    on_egfr = Assertion("opposes", "stop", ("metformin",), labs=(("egfr", "at_or_above", 60.0),))
    knowledge = _with_assertion("kb.metformin-egfr-thresholds", on_egfr)
    assert steps.check_support(suggestion, _chart(built.context, knowledge), POLICY).passed


# --- dose direction ------------------------------------------------------------------------------------------


def _metformin_change(dose: corpus.JsonDict) -> tuple[steps.Chart, AiSuggestion]:
    built = chart([METFORMIN_500], [], egfr=38, creatinine=1.7)
    target = med(built, METFORMIN_500)
    context = _dosed(built.context, target, "500 mg", "2 per 1 d")  # 1000 mg a day
    egfr = _handle(built.handles.references, "Observation/egfr")
    action = drug("change-dose", "update", target, METFORMIN_500, dose)
    return _chart(context), _suggest(action, [target, egfr], ("kb.metformin-dose-by-egfr",))


@pytest.mark.parametrize(
    ("dose", "direction"),
    [
        (corpus.dose(500), "reduce"),  # 500 mg a day
        (corpus.dose(1000, frequency=2), "increase"),
        (corpus.dose(500, frequency=2), None),  # the same daily dose
        (corpus.dose(2, "tablet", frequency=1), None),  # 2 tablets of 500 mg: also the same 1000 mg
    ],
)
def test_the_direction_compares_daily_milligrams(dose: corpus.JsonDict, direction: str | None) -> None:
    chart_, suggestion = _metformin_change(dose)
    assert steps.dose_direction(suggestion.action, chart_) == direction


def test_a_reduce_assertion_supports_only_a_reduction() -> None:
    chart_, reduced = _metformin_change(corpus.dose(500))
    verdict = steps.check_basis(reduced, chart_)
    assert verdict.passed and "change-dose (reduce) of metformin" in verdict.detail
    chart_, raised = _metformin_change(corpus.dose(1000, frequency=2))
    assert steps.check_basis(raised, chart_).reason is Reason.UNSUPPORTED_CLAIM


def test_an_unknown_direction_supports_nothing_but_meets_an_opposing_assertion() -> None:
    chart_, undosed = _metformin_change(corpus.dose(5, "mL"))  # millilitres of a tablet: no milligrams
    assert steps.dose_direction(undosed.action, chart_) is None
    assert steps.check_basis(undosed, chart_).reason is Reason.UNSUPPORTED_CLAIM
    opposing = Assertion("opposes", "change-dose", ("metformin",), direction="increase")
    knowledge = _with_assertion("kb.metformin-dose-by-egfr", opposing)
    verdict = steps.check_support(undosed, _chart(chart_.context, knowledge), POLICY)
    assert verdict.reason is Reason.CONTRADICTED_BY_CITATION


def test_no_direction_without_a_current_order_to_compare() -> None:
    chart_, suggestion = _metformin_change(corpus.dose(500))
    elsewhere = suggestion.action.model_copy(update={"target": "M9"})
    assert steps.dose_direction(elsewhere, chart_) is None
    undosed = suggestion.action.model_copy(update={"dose": None})
    assert steps.dose_direction(undosed, chart_) is None


# --- intents -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("intent", ["counsel", "refer", "no-change"])
def test_intents_that_change_no_order_need_no_asserted_basis(intent: str) -> None:
    built = chart([METFORMIN_ER], [], egfr=24, creatinine=2.6)
    advice = (
        corpus.action(intent=intent)
        if intent != "refer"
        else corpus.action(
            "create",
            "ServiceRequest",
            "snomed",
            "306206005",
            "Referral to nephrology service",
            intent="refer",
        )
    )
    verdict = steps.check_basis(
        _suggest(advice, [], ("kb.metformin-egfr-thresholds",)), _chart(built.context)
    )
    assert verdict.passed and "no asserted basis needed" in verdict.detail


def test_an_order_test_for_a_drug_needs_that_drug_cited() -> None:
    built = corpus.build()
    warfarin = corpus.handle_of("MedicationRequest/warfarin")
    chart_ = steps.Chart(built.context, corpus.knowledge(), corpus.RETRIEVED)
    cited = AiSuggestion.model_validate(corpus.clean_inr())
    verdict = steps.check_basis(cited, chart_)
    assert verdict.passed and "order-test of 6301-6" in verdict.detail
    uncited = cited.model_copy(update={"citations": cited.citations.model_copy(update={"patient": []})})
    assert warfarin not in uncited.citations.patient
    assert steps.check_basis(uncited, chart_).reason is Reason.UNSUPPORTED_CLAIM


def test_the_basis_step_runs_after_safety_and_names_its_assertion() -> None:
    decision = govern(
        [corpus.parsed(corpus.answer(corpus.clean_inr()))],
        corpus.context(),
        corpus.RETRIEVED,
        corpus.knowledge(),
        POLICY,
        corpus.PATIENT,
    )
    order = [r.step for r in decision.log if r.sample == 0]
    assert order.index("safety") < order.index("basis") < order.index("actions")
    (basis,) = (r for r in decision.log if r.step == "basis")
    assert basis.passed and basis.detail.startswith("kb.warfarin-inr-monitoring supports order-test")


# --- allergy conditions --------------------------------------------------------------------------------------

AMOXICILLIN = corpus.AMOXICILLIN


@pytest.mark.parametrize(("cite_allergy", "supported"), [(True, True), (False, False)])
def test_a_stop_for_an_allergy_needs_the_allergy_cited(cite_allergy: bool, supported: bool) -> None:
    built = chart([AMOXICILLIN], [], egfr=84, allergy_text="PCN")
    target = med(built, AMOXICILLIN)
    allergy = _handle(built.handles.references, "AllergyIntolerance/typed")
    cited = [target, *([allergy] if cite_allergy else [])]
    suggestion = _suggest(drug("stop", "update", target), cited, ("kb.penicillin-allergy-penicillins",))
    verdict = steps.check_basis(suggestion, _chart(built.context))
    assert verdict.passed is supported
    if supported:
        assert verdict.detail.endswith("supports stop of penicillin when penicillin allergy")


def test_an_opposing_allergy_condition_holds_on_the_chart_and_not_without_the_allergy() -> None:
    opposing = Assertion("opposes", "stop", ("penicillin",), allergies=("penicillin",))
    knowledge = _with_assertion("kb.penicillin-allergy-penicillins", opposing)
    for allergy_text, contradicted in (("PCN", True), (None, False)):
        built = chart([AMOXICILLIN], [], egfr=84, allergy_text=allergy_text)
        target = med(built, AMOXICILLIN)
        suggestion = _suggest(
            drug("stop", "update", target), [target], ("kb.penicillin-allergy-penicillins",)
        )
        verdict = steps.check_support(suggestion, _chart(built.context, knowledge), POLICY)
        assert (verdict.reason is Reason.CONTRADICTED_BY_CITATION) is contradicted
