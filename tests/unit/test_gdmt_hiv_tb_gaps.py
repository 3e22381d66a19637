"""Care gaps in HFrEF (the four drug classes), Pneumocystis prophylaxis in HIV, pyridoxine with isoniazid,
aspirin against preeclampsia and neutropenia on antithyroid drugs: each threshold at, just below and just above
its line, and what the chart must hold for a card."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plugin.context.build import build_context
from plugin.rules import monitoring
from plugin.rules.model import Finding, RuleFacts
from tests.support.charts import JsonDict, chart_path, chart_prefetch
from tests.support.rule_cases import Chart, lab, med, problem

pytestmark = pytest.mark.unit

FOUR_CLASSES = (med("lisinopril"), med("carvedilol"), med("spironolactone"), med("dapagliflozin"))


def run(rule: object, *resources: JsonDict, age: int = 60) -> list[Finding]:
    built = Chart(age=age, resources=resources).build()
    return list(rule(RuleFacts.of(built.context)))  # type: ignore[operator]


# --- HFrEF ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ef", "fires"), [(39, True), (40, True), (41, False)])
def test_heart_failure_with_an_ef_of_40_or_less_is_hfref(ef: float, fires: bool) -> None:
    found = run(
        monitoring.hfref_therapy,
        problem("heart-failure"),
        lab("lvef", ef, 200),
        med("lisinopril"),
        med("carvedilol"),
    )
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and "an MRA (if potassium is below 5.0)" in found[0].summary
        assert "SGLT2" in found[0].summary and "beta-blocker" not in found[0].summary


def test_a_coded_hfref_needs_no_ef_and_all_four_classes_close_the_gap() -> None:
    assert run(monitoring.hfref_therapy, problem("hfref"))
    assert not run(monitoring.hfref_therapy, problem("hfref"), *FOUR_CLASSES)
    assert not run(
        monitoring.hfref_therapy, problem("heart-failure")
    )  # EF unknown: rule.heart-failure-therapy-gap's


def test_metoprolol_counts_only_as_the_succinate() -> None:
    tartrate = med("metoprolol-tartrate")
    found = run(
        monitoring.hfref_therapy,
        problem("hfref"),
        med("lisinopril"),
        tartrate,
        med("spironolactone"),
        med("dapagliflozin"),
    )
    assert [f.summary for f in found] and "beta-blocker" in found[0].summary
    assert not run(
        monitoring.hfref_therapy,
        problem("hfref"),
        med("lisinopril"),
        med("metoprolol"),
        med("spironolactone"),
        med("dapagliflozin"),
    )


@pytest.mark.parametrize(("potassium", "mra_asked"), [(4.9, True), (5.0, False), (5.1, False)])
def test_an_mra_is_asked_for_only_below_potassium_5(potassium: float, mra_asked: bool) -> None:
    found = run(
        monitoring.hfref_therapy,
        problem("hfref"),
        lab("potassium", potassium, 5),
        med("lisinopril"),
        med("carvedilol"),
        med("dapagliflozin"),
    )
    assert bool(found) is mra_asked
    if mra_asked:
        assert "an MRA:" in found[0].summary or "an MRA " in found[0].summary


@pytest.mark.parametrize(("egfr", "sglt2_asked"), [(19, False), (20, True), (21, True)])
def test_an_sglt2_inhibitor_is_asked_for_from_egfr_20(egfr: float, sglt2_asked: bool) -> None:
    found = run(
        monitoring.hfref_therapy,
        problem("hfref"),
        lab("egfr", egfr, 5),
        med("lisinopril"),
        med("carvedilol"),
        med("spironolactone"),
    )
    assert bool(found) is sglt2_asked


def test_the_older_heart_failure_card_stands_aside_for_hfref() -> None:
    assert run(monitoring.heart_failure_therapy, problem("heart-failure"))
    assert not run(monitoring.heart_failure_therapy, problem("hfref"))
    assert not run(monitoring.heart_failure_therapy, problem("heart-failure"), lab("lvef", 30, 100))


def test_an_echo_ef_filed_under_imaging_reaches_the_rules_through_the_declared_prefetch() -> None:
    """Synthea files LVEF with category imaging, which the labs query (category laboratory) never returns."""
    prefetch, _, _ = chart_prefetch(chart_path("Parker_Casper"))
    assert not any(
        coding.get("code") == "10230-1"
        for entry in prefetch["labs"].get("entry", [])
        for coding in entry["resource"]["code"]["coding"]
    )
    built = build_context(prefetch, datetime(2021, 2, 19, tzinfo=UTC))
    facts = RuleFacts.of(built.context)
    ef = facts.current("lvef")
    assert ef is not None and ef.value <= 40
    [card] = monitoring.hfref_therapy(facts)
    assert ef.handle in card.inputs


# --- Pneumocystis prophylaxis ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("cd4", "fires"), [(199, True), (200, False), (201, False)])
def test_pjp_prophylaxis_below_a_cd4_of_200(cd4: float, fires: bool) -> None:
    found = run(monitoring.pjp_prophylaxis, problem("hiv"), lab("cd4", cd4, 30))
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and "co-trimoxazole" in found[0].summary


def test_pjp_prophylaxis_taken_a_stale_count_or_no_hiv_say_nothing() -> None:
    assert not run(monitoring.pjp_prophylaxis, problem("hiv"), lab("cd4", 120, 30), med("co-trimoxazole"))
    assert not run(monitoring.pjp_prophylaxis, problem("hiv"), lab("cd4", 120, 181))
    assert run(monitoring.pjp_prophylaxis, problem("hiv"), lab("cd4", 120, 180))
    assert not run(monitoring.pjp_prophylaxis, lab("cd4", 120, 30))


# --- isoniazid and pyridoxine ---------------------------------------------------------------------------------


def test_isoniazid_without_pyridoxine_in_a_patient_at_risk() -> None:
    (card,) = run(monitoring.isoniazid_without_pyridoxine, med("isoniazid"), problem("diabetes"))
    assert card.severity == "warning" and "pyridoxine 25-50 mg" in card.summary
    assert not run(
        monitoring.isoniazid_without_pyridoxine, med("isoniazid"), problem("diabetes"), med("pyridoxine")
    )
    assert not run(monitoring.isoniazid_without_pyridoxine, med("isoniazid"))  # no risk on record
    assert not run(monitoring.isoniazid_without_pyridoxine, problem("diabetes"))


# --- aspirin against preeclampsia -----------------------------------------------------------------------------


@pytest.mark.parametrize(("weeks", "fires"), [(11, False), (12, True), (13, True), (28, True), (29, False)])
def test_aspirin_is_asked_for_from_12_to_28_weeks_with_a_risk_factor(weeks: int, fires: bool) -> None:
    pregnancy = problem("pregnancy", "pregnancy", onset_days_ago=weeks * 7 + 3)
    found = run(monitoring.preeclampsia_aspirin, pregnancy, problem("hypertension"), age=34)
    assert bool(found) is fires
    assert not run(monitoring.preeclampsia_aspirin, pregnancy, age=34)  # no risk factor on record


# --- agranulocytosis on antithyroid drugs ---------------------------------------------------------------------


@pytest.mark.parametrize(("anc", "fires"), [(0.9, True), (1.0, False), (1.1, False)])
def test_neutrophils_below_1_on_methimazole(anc: float, fires: bool) -> None:
    found = run(monitoring.antithyroid_agranulocytosis, med("methimazole"), lab("neutrophils", anc, 2))
    assert bool(found) is fires
    assert not run(
        monitoring.antithyroid_agranulocytosis, med("methimazole"), lab("neutrophils", 0.4, 15)
    )  # stale
